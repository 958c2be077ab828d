"""The per-operator profile (``run --profile``): MACs per task and instructions per task.

MACs are checked against counts made from the TFLite file's own tensor shapes (the formula
here, and ``bench/macs.py``), not from the compiler. The per-task instructions are checked
against independent QEMU measurements of the same firmware: a plain run's
``instructions_model`` (the rows must add up to it exactly), the plugin's count of each
kernel's own body (a task's span must hold it), and the commits the tile plan promises.
The per-task NVM bytes written are checked against the output tensors' sizes, from the
shapes and dtypes in ``model.json`` and the TFLite file.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import reference, sim, zoo
from tvm_intermittent.sim.profile import STARTUP, profile

import tflite_models as tm
from test_cli import run_cli

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
from macs import count_macs  # noqa: E402

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("depthwise,stride", [(False, (1, 1)), (True, (2, 2)),
                                              (False, (2, 1))])
def test_conv_macs_are_outputs_times_window(tmp_path, depthwise, stride):
    """One convolution: MACs = output elements x taps (x input channels unless depthwise),
    from the shapes written into the TFLite file."""
    model, _ = tm.conv2d(hw=(9, 7), cin=4, cout=4 if depthwise else 6, kernel=(3, 3),
                         stride=stride, depthwise=depthwise)
    path = tmp_path / "conv.tflite"
    path.write_bytes(model)
    tasks = ti.build(path, name="conv").manifest()["tasks"]
    out_h, out_w = -(-9 // stride[0]), -(-7 // stride[1])  # SAME padding
    channels = 4 if depthwise else 6
    expected = out_h * out_w * channels * 9 * (1 if depthwise else 4)
    assert [t["macs"] for t in tasks if t["macs"]] == [expected]
    assert count_macs(path) == expected


@pytest.fixture(scope="module")
def anomaly(tmp_path_factory):
    """The zoo's anomaly detector: 13 tasks, more than one run's 8 counted functions."""
    entry = zoo.get("ad")
    project = ti.build(entry.path, name="ad").export(tmp_path_factory.mktemp("ad") / "ad")
    array, _ = zoo.sample_inputs("ad", count=1)[0]
    return entry, project, [array]


def test_profile_rows_add_up_and_hold_their_kernels(anomaly):
    entry, project, inputs = anomaly
    result = profile(project, inputs)
    tasks = json.loads((project / "model.json").read_text())["tasks"]
    assert len(tasks) > 8 and result.runs == 1  # one run, more tasks than counted ranges
    assert [r.operator for r in result.rows] == [STARTUP] + [t["kernel"] for t in tasks]

    plain = sim.run(project, inputs)
    assert sum(r.instructions for r in result.rows) == plain.instructions_model
    assert result.instructions_model == plain.instructions_model
    assert abs(sum(r.share for r in result.rows) - 1.0) < 1e-9
    # Each task commits as often as its tile plan says.
    assert [r.commits for r in result.rows[1:]] == [t["commits"] for t in tasks]
    # The MACs of the whole model, from the TFLite file, and each dense layer's in x out.
    assert result.macs == count_macs(entry.path)
    dense = [r for r in result.rows if r.operator.startswith("dense")]
    assert dense and all(r.macs > 0 and r.instructions_per_mac > 0.5 for r in dense)
    # A task's span holds its kernel's own instructions (plugin range counts, one run),
    # in tasks counted by the first run and by the second.
    picked = [result.rows[3], result.rows[12]]  # tasks 2 and 11: dense_s8, dense_s89
    kernels = tuple(f"intm_k_{r.operator}" for r in picked)
    own = sim.run(project, inputs, functions=kernels).range_instructions
    for row, kernel in zip(picked, kernels):
        assert 0 < own[kernel] <= row.instructions
        assert row.instructions - own[kernel] < 0.25 * row.instructions  # loop and commits
    np.testing.assert_array_equal(result.outputs[0],
                                  reference.run_tflite_micro(entry.path, inputs)[0])
    # The last task writes the model's output, each byte once in a continuous run; every
    # task that computes reads and writes NVM (its tensors live in the NVM arena).
    manifest = json.loads((project / "model.json").read_text())
    (output,) = manifest["outputs"]
    size = int(np.prod(output["shape"])) * np.dtype(output["dtype"]).itemsize
    assert result.rows[-1].nvm_written_bytes == size
    assert result.rows[0].nvm_written_bytes == result.rows[0].nvm_read_bytes == 0  # startup
    assert all(r.nvm_written_bytes > 0 and r.nvm_read_bytes > 0 for r in result.rows[1:])


@pytest.mark.parametrize("kind", ["conv2d", "fully_connected", "average_pool", "wide_dense"])
def test_each_task_writes_its_output_tensor_once(tmp_path, kind):
    """A one-operator model: in a continuous run its task's tiles store exactly the bytes
    of the model's output (shape and dtype from model.json, independent of the plugin),
    one byte store per int8 element; a reduction too long for one charge (``wide_dense``,
    split into chunks) also stores its int32 running sum once per element at every chunk
    but the last, into the two NVM slots the chunks pass it through. The inputs are read
    from NVM at least once each, and the commits store apart."""
    model, inputs = {"conv2d": lambda: tm.conv2d(hw=(9, 7), cin=5, cout=6),
                     "fully_connected": lambda: tm.fully_connected(batch=2, depth=40, units=9),
                     "average_pool": lambda: tm.pool("AVERAGE_POOL_2D"),
                     "wide_dense": lambda: tm.fully_connected(batch=1, depth=4000, units=4),
                     }[kind]()
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(model)
    # A small capacitor: several tiles and commits, so the tiles' stores add up per task.
    project = ti.build(path, "intermittent/msp430fr5994", name=kind,
                       capacitor_f=1.5e-6).export(tmp_path / kind)
    manifest = json.loads((project / "model.json").read_text())
    assert len(manifest["tasks"]) == 1 and manifest["tasks"][0]["commits"] > 1
    (plan,) = manifest["tiles"].values()
    assert (plan["chunks"] > 1) == (kind == "wide_dense")
    result = sim.run(project, inputs)
    (output,) = manifest["outputs"]
    assert output["dtype"] == "int8"
    elements = int(np.prod(output["shape"]))
    partial_words = elements * (plan["chunks"] - 1)
    written = result.traffic_by_task[0]
    assert written.nvm_store_bytes == elements + 4 * partial_words
    assert written.nvm_stores == elements + partial_words  # one access per byte or word
    assert written.nvm_load_bytes >= inputs[0].nbytes
    commit = result.traffic_by_phase["commit"]
    assert commit.nvm_stores > 0 and commit.nvm_loads == 0
    assert result.traffic.nvm_store_bytes == sum(
        w.nvm_store_bytes for w in result.traffic_by_phase.values())
