"""Tuning on msp430fr5994 below the capacitor the analytic rule accepts.

The analytic rule keeps half of what one charge leaves for a batch, the tuner 0.8 of it
(``TUNING_MARGIN``): an operator whose smallest tile lies between the two is refused by
``compile --capacitor`` but can be tuned, and built from the log. The model is one int8
dense layer of 64 units over 128 inputs, whose smallest tile (a block of 8 output units,
about 1,800 instructions) lies inside that window at 0.4 uF on msp430fr5994 (3.0 V to 1.8 V, 1 mW): the
rule allows about 1,400 instructions per commit there, the tuner about 2,300; at 0.2 uF
neither allows it. References: TFLite Micro's outputs.
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
#: Where the rule refuses the dense layer's smallest tile and the tuner's margin admits it.
INSIDE = 0.4e-6
#: Where neither does.
BELOW = 0.2e-6


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    data, inputs = tflite_models.fully_connected(batch=1, depth=128, units=64, seed=11)
    path = tmp_path_factory.mktemp("model") / "dense.tflite"
    path.write_bytes(data)
    return path, inputs


def _prepare(path, capacitor_f):
    return builder.prepare(path, "intermittent/" + BOARD, capacitor_f=capacitor_f)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli_main(list(argv), Environment(out, err, show_progress=False))
    return status, out.getvalue(), err.getvalue()


def test_an_operator_the_rule_refuses_gets_the_tuners_smallest_tile(dense_model):
    path, _ = dense_model
    with pytest.raises(DoesNotFitError, match="operator dense_s8: its smallest tile"):
        ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE)
    model = ModelTasks.of(_prepare(path, INSIDE))
    assert list(model.refused) == ["dense_s8"]
    assert "its smallest tile (one iteration of 1 fused loops)" in model.refused["dense_s8"]
    base = model.base["dense_s8"]
    assert base.knobs == Knobs(depth=1, tiles_per_commit=1)  # one block of units per commit
    # Over the rule's share of the charge, within the tuner's.
    rule_limit = int(model.refused["dense_s8"].split("at most ")[1].split(" ")[0]
                     .replace(",", ""))
    assert rule_limit < base.batch_cost <= base.batch_limit
    # The kernel computes its 64 units in blocks of 8: a tile is a block, the task 8 tiles.
    default = model.tasks[0].default
    assert (default.depth, default.extent, default.tiles_per_commit) == (1, 8, 1)


def test_a_tile_neither_margin_admits_is_refused_naming_both(dense_model, tmp_path):
    path, _ = dense_model
    with pytest.raises(DoesNotFitError) as err:
        ModelTasks.of(_prepare(path, BELOW))
    text = str(err.value)
    assert "operator dense_s8: its smallest tile" in text
    assert "the tuner's margin 0.8 admits no tile of it either" in text
    log = tmp_path / "log"
    status, _, err_text = _cli("tune", str(path), "--board", BOARD, "--capacitor", "0.2uF",
                               "--trials", "2", "--log", str(log))
    assert status == 2 and "admits no tile of it either" in err_text
    assert "Traceback" not in err_text and not log.exists()  # nothing half-written


@pytest.fixture(scope="module")
def tuned(dense_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("tuning") / "log"
    result = search.tune(dense_model[0], board=BOARD, trials=2, log=log, workers=2,
                         capacitor=INSIDE, cost_model="analytic")
    return log, result


@pytest.mark.qemu
def test_tuning_below_the_rule_measures_on_the_board(tuned):
    log, result = tuned
    # Two trials asked and made: one block per commit is the only tiling that fits (two
    # blocks need about 3,700 instructions); unrolled by 2 or 4 or not, it is 3 candidates.
    assert result.board == BOARD and result.measured == 2 and result.failed == 0
    assert list(result.refused) == ["dense_s8"]
    assert "refused by the analytic rule" in result.table()
    # The default build (the tuner's smallest tile) was measured under the capacitor and lost
    # power several times: an inference needs several charges of 0.4 uF.
    assert result.default["finished"] and result.default["failures"] >= 3
    entries = TuningLog(log).measurements(kind="record", board=BOARD)
    assert len(entries) == 2 and all(
        Knobs.from_dict(e["knobs"]).to_dict() == Knobs(depth=1, unroll=e["knobs"]["unroll"])
        .to_dict() for e in entries)
    assert all(e["failures"] >= 3 and e["finished"] for e in entries)


@pytest.mark.qemu
def test_the_build_from_the_log_runs_under_that_capacitor(tuned, dense_model):
    """The tuned build completes under 0.4 uF with TFLite Micro's outputs, the power failing
    inside the dense layer's tile batches."""
    log, _ = tuned
    path, inputs = dense_model
    artifact = ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=log)
    tuning = artifact.manifest()["tuning"]
    assert "dense_s8" in tuning["tuned"]
    notices = [str(n) for n in artifact.notices]
    assert any(TUNED_PAST_RULE in n and "dense_s8" in n and "smallest tile" in n
               for n in notices), notices
    reference = run_tflite_micro(path.read_bytes(), inputs)
    run = artifact.run(inputs, power=sim.Capacitor(ti.load_board(BOARD), capacitor_f=INSIDE))
    assert run.finished and run.failures >= 3
    np.testing.assert_array_equal(run.outputs[0], reference[0])
    struck = set()
    for point in run.failure_points:
        before = [name for name, count in run.events if count < point]
        struck.add(before[-1] if before else "boot")
    assert "intm_task_0" in struck  # the dense layer's task


def test_a_log_without_a_record_of_the_refused_operator_is_refused(dense_model, tmp_path):
    path, _ = dense_model
    empty = tmp_path / "empty"
    TuningLog(empty, create=True)
    with pytest.raises(DoesNotFitError, match="has no record of this operator"):
        ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=empty)
    status, out, err = _cli("compile", str(path), "--board", BOARD, "--capacitor", "0.4uF",
                            "--tuning-log", str(empty), "-o", str(tmp_path / "p"), "--json")
    assert status == 2 and "Traceback" not in err
    assert "dense_s8" in err and "tvm-intermittent tune" in err
    assert not (tmp_path / "p").exists()
    assert json.loads(out or "{}").get("tuning") is None


@pytest.mark.qemu
def test_a_default_build_measured_vouches_for_the_smallest_tile(dense_model, tmp_path):
    """With no candidate measured (trials 0), the log still holds ``tune``'s measurement of
    the default build, whose refused operator ran at the tuner's smallest tile: the build
    from that log takes the tile, and says so."""
    path, inputs = dense_model
    log = tmp_path / "log"
    result = search.tune(path, board=BOARD, trials=0, log=log, capacitor=INSIDE,
                         cost_model="analytic")
    assert result.measured == 0 and result.default["finished"]
    assert not TuningLog(log).measurements(kind="record")
    artifact = ti.build(path, "intermittent/" + BOARD, capacitor_f=INSIDE, tuning_log=log)
    assert artifact.manifest()["tuning"]["tuned"]["dense_s8"]["ranked_by"] == "smallest tile"
    assert any("measured it in the default build" in str(n) for n in artifact.notices)
    run = artifact.run(inputs, power=sim.Capacitor(ti.load_board(BOARD), capacitor_f=INSIDE))
    assert run.finished and run.failures >= 3
    np.testing.assert_array_equal(run.outputs[0],
                                  run_tflite_micro(path.read_bytes(), inputs)[0])
