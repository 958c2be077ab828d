"""Tuning on msp430fr5994 below the capacitor the analytic rule accepts.

The analytic rule keeps half of what one charge leaves for a batch, the tuner 0.8 of it
(``TUNING_MARGIN``): an operator whose smallest tile lies between the two is refused by
``compile --capacitor`` but can be tuned, and built from the log. The model is one int8
3x3 convolution of 12 to 16 channels over 6 x 6 pixels, whose smallest tile (one iteration
of its 3 loops, about 1,850 instructions) lies inside that window at 0.4 uF on msp430fr5994
(3.0 V to 1.8 V, 1 mW): the rule allows about 1,480 instructions per commit there, the
tuner about 2,360; at 0.2 uF neither allows it. (A fully connected or depthwise layer would
not do: the rule builds those finer where their tile does not fit, ``test_small_tiles``.)
References: TFLite Micro's outputs.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import builder, sim
from tvm_intermittent.cli import main as cli_main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.errors import DoesNotFitError
from tvm_intermittent.reference import run_tflite_micro
from tvm_intermittent.tuning import Knobs, ModelTasks, search
from tvm_intermittent.tuning.apply import TUNED_PAST_RULE
from tvm_intermittent.tuning.log import TuningLog

import tflite_models

BOARD = "msp430fr5994"
#: Where the rule refuses the convolution's smallest tile and the tuner's margin admits it.
INSIDE = 0.4e-6
#: Where neither does.
BELOW = 0.2e-6


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    data, inputs = tflite_models.conv2d(hw=(6, 6), cin=12, cout=16, seed=11)
    path = tmp_path_factory.mktemp("model") / "conv.tflite"
    path.write_bytes(data)
    return path, inputs


def _prepare(path, capacitor_f):
    return builder.prepare(path, "intermittent/" + BOARD, capacitor_f=capacitor_f)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(list(argv), Environment(out, err, show_progress=False))
    return status, out.getvalue(), err.getvalue()


def test_an_operator_the_rule_refuses_gets_the_tuners_smallest_tile(conv_model):
    path, _ = conv_model
    with pytest.raises(DoesNotFitError, match="operator conv2d_s8: its smallest tile"):
        ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE)
    model = ModelTasks.of(_prepare(path, INSIDE))
    assert list(model.refused) == ["conv2d_s8"]
    assert "its smallest tile (one iteration of 3 fused loops)" in model.refused["conv2d_s8"]
    base = model.base["conv2d_s8"]
    assert base.knobs == Knobs(depth=3, tiles_per_commit=1)  # one tile per commit
    # Over the rule's share of the charge, within the tuner's.
    rule_limit = int(model.refused["conv2d_s8"].split("at most ")[1].split(" ")[0]
                     .replace(",", ""))
    assert rule_limit < base.batch_cost <= base.batch_limit
    # A tile is one iteration of the kernel's 3 loops, the task 72 tiles.
    default = model.tasks[0].default
    assert (default.depth, default.extent, default.tiles_per_commit) == (3, 72, 1)


def test_a_tile_neither_margin_admits_is_refused_naming_both(conv_model, tmp_path):
    path, _ = conv_model
    with pytest.raises(DoesNotFitError) as err:
        ModelTasks.of(_prepare(path, BELOW))
    text = str(err.value)
    assert "operator conv2d_s8: its smallest tile" in text
    assert "the tuner's margin 0.8 admits no tile of it either" in text
    log = tmp_path / "log"
    status, _, err_text = _cli("tune", str(path), "--board", BOARD, "--capacitor", "0.2uF",
                               "--trials", "2", "--log", str(log))
    assert status == 2 and "admits no tile of it either" in err_text
    assert "Traceback" not in err_text and not log.exists()  # nothing half-written


@pytest.fixture(scope="module")
def tuned(conv_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("tuning") / "log"
    result = search.tune(conv_model[0], board=BOARD, trials=2, log=log, workers=2,
                         capacitor=INSIDE, cost_model="analytic")
    return log, result


@pytest.mark.qemu
def test_tuning_below_the_rule_measures_on_the_board(tuned):
    log, result = tuned
    # Two trials asked, two made: one tile per commit is the only tiling that fits (two tiles
    # need about 3,700 instructions); the candidates differ in the operand staged in SRAM
    # and in the unroll factor inside the tile.
    assert result.board == BOARD and result.measured == 2 and result.failed == 0
    assert list(result.refused) == ["conv2d_s8"]
    assert "refused by the analytic rule" in result.table()
    # The default build (the tuner's smallest tile) was measured under the capacitor and lost
    # power several times: an inference needs several charges of 0.4 uF.
    assert result.default["finished"] and result.default["failures"] >= 3
    entries = TuningLog(log).measurements(kind="record", board=BOARD)
    knobs = [Knobs.from_dict(e["knobs"]) for e in entries]
    assert len(set(knobs)) == 2
    assert all(k == Knobs(depth=3, stage=k.stage, unroll=k.unroll) for k in knobs)
    assert all(e["failures"] >= 3 and e["finished"] for e in entries)


@pytest.mark.qemu
def test_the_build_from_the_log_runs_under_that_capacitor(tuned, conv_model):
    """The tuned build completes under 0.4 uF with TFLite Micro's outputs, the power failing
    inside the convolution's tile batches."""
    log, _ = tuned
    path, inputs = conv_model
    artifact = ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=log)
    tuning = artifact.manifest()["tuning"]
    assert "conv2d_s8" in tuning["tuned"]
    notices = [str(n) for n in artifact.notices]
    assert any(TUNED_PAST_RULE in n and "conv2d_s8" in n and "smallest tile" in n
               for n in notices), notices
    reference = run_tflite_micro(path.read_bytes(), inputs)
    run = artifact.run(inputs, power=sim.Capacitor(ti.load_board(BOARD), capacitor_f=INSIDE))
    assert run.finished and run.failures >= 3
    np.testing.assert_array_equal(run.outputs[0], reference[0])
    struck = set()
    for point in run.failure_points:
        before = [name for name, count in run.events if count < point]
        struck.add(before[-1] if before else "boot")
    assert "intm_task_0" in struck  # the convolution's task


def test_a_log_without_a_record_of_the_refused_operator_is_refused(conv_model, tmp_path):
    path, _ = conv_model
    empty = tmp_path / "empty"
    TuningLog(empty, create=True)
    with pytest.raises(DoesNotFitError, match="has no record of this operator"):
        ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=empty)
    status, out, err = _cli("compile", str(path), "--board", BOARD, "--capacitor", "0.4uF",
                            "--tuning-log", str(empty), "-o", str(tmp_path / "p"), "--json")
    assert status == 2 and "Traceback" not in err
    assert "conv2d_s8" in err and "tvm-intermittent tune" in err
    assert not (tmp_path / "p").exists()
    assert json.loads(out or "{}").get("tuning") is None


@pytest.mark.qemu
def test_a_default_build_measured_vouches_for_the_smallest_tile(conv_model, tmp_path):
    """With no candidate measured (trials 0), the log still holds ``tune``'s measurement of
    the default build, whose refused operator ran at the tuner's smallest tile: the build
    from that log takes the tile, and says so."""
    path, inputs = conv_model
    log = tmp_path / "log"
    result = search.tune(path, board=BOARD, trials=0, log=log, capacitor=INSIDE,
                         cost_model="analytic")
    assert result.measured == 0 and result.default["finished"]
    assert not TuningLog(log).measurements(kind="record")
    artifact = ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=log)
    assert artifact.manifest()["tuning"]["tuned"]["conv2d_s8"]["ranked_by"] == "smallest tile"
    assert any("measured it in the default build" in str(n) for n in artifact.notices)
    run = artifact.run(inputs, power=sim.Capacitor(ti.load_board(BOARD), capacitor_f=INSIDE))
    assert run.finished and run.failures >= 3
    np.testing.assert_array_equal(run.outputs[0],
                                  run_tflite_micro(path.read_bytes(), inputs)[0])
