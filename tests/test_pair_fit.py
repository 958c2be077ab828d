"""The depthwise kernel's vertical row pairs where they fit one charge, single rows where not.

Pairs of output rows are the faster DSP depthwise kernel but double its smallest tile. The
case is one DEPTHWISE_CONV_2D of kws's shape (25 x 5 windows, 64 channels, 3x3, SAME) on
msp430fr5994, whose paired tile (a window of two rows) the tiler predicts at about 4,800
instructions and whose single-row tile (one window) at about 2,600. At 1 uF one commit
may take about 3,900: the compiler builds that operator one row at a time and says so; at
1.5 uF the pairs fit and stay; at 0.5 uF neither fits and the operator is built in channel
blocks of one pixel (``test_small_tiles``); at 0.09 uF not even one channel quad of a pixel
fits, and the model is refused.
The reference is TFLite Micro; the failure run is the capacitor's own schedule.
"""

import re

import numpy as np
import pytest
import tvm  # noqa: F401  first: its plugin autoload imports tvm_intermittent.transform

import tvm_intermittent as ti
from tvm_intermittent import reference, sim
from tvm_intermittent.board import load_board
from tvm_intermittent.cli.core import main as cli_main
from tvm_intermittent.errors import DoesNotFitError
from tvm_intermittent.transform.notices import ONE_ROW_TILES

from depthwise_fit import (BOARD, DSP_MARK, KERNEL, LARGE_F, PAIR_MARK, SMALL_F,
                           write_model)
from failure_checks import failures_inside

pytestmark = pytest.mark.qemu

#: Where no tile fits, not even one channel quad of one pixel.
TOO_SMALL_F = 0.09e-6


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The one-operator model's path and seeded input."""
    return write_model(tmp_path_factory.mktemp("pairfit"))


def _miss(reason: str) -> tuple[int, int]:
    """The paired tile's instructions and one commit's most, as the notice quotes them."""
    found = re.search(r"paired tile .* needs about ([\d,]+) instructions, one charge of board "
                      rf"{BOARD} pays [\d,]+ \(at most ([\d,]+) per commit\)", reason)
    assert found, reason
    return tuple(int(g.replace(",", "")) for g in found.groups())


def _build(path, capacitor_f):
    return ti.build(path, f"intermittent/{BOARD}", name="dw", capacitor_f=capacitor_f)


def test_paired_tile_too_large_takes_single_rows_and_runs_under_the_capacitor(model,
                                                                              tmp_path):
    path, inputs = model
    artifact = _build(path, SMALL_F)
    kernels = artifact.sources.files["model/kernels.c"]
    assert DSP_MARK in kernels and PAIR_MARK not in kernels, "not the one-row DSP kernel"
    # The notice names the operator and both sides of the miss.
    [notice] = [n for n in artifact.notices if n.path == ONE_ROW_TILES]
    assert notice.operator == KERNEL
    needed, target = _miss(notice.reason)
    assert f"pays {artifact.power_cycle_budget:,}" in notice.reason
    assert notice.to_dict() in artifact.manifest()["notices"]
    # One tile per window: 25 x 5 of them, each within one commit's share of the charge,
    # which the paired tile exceeds.
    plan = artifact.tiles[KERNEL]
    assert plan.extent == 25 * 5
    assert plan.tile_instructions <= target < needed

    project = artifact.export(tmp_path / "p")
    schedule = sim.power.Capacitor(load_board(BOARD), capacitor_f=SMALL_F)
    run = sim.run(project, inputs, power=schedule)
    want = reference.run_tflite_micro(path, inputs)
    assert run.finished
    np.testing.assert_array_equal(run.outputs[0], want[0])
    assert len(np.unique(want[0])) > 8, "a nearly constant output would test little"
    assert run.failures >= 10 and run.boots == run.failures + 1
    # Where: failures struck inside the kernel's tile batches (after a task's entry and
    # before the commit that follows it), not only in boots and commits.
    inside = failures_inside(run, artifact.manifest(), KERNEL)
    assert inside >= run.failures // 2, (inside, run.failures)


def test_paired_tile_that_fits_keeps_the_pairs(model):
    path, _ = model
    small = _build(path, SMALL_F)
    artifact = _build(path, LARGE_F)
    assert PAIR_MARK in artifact.sources.files["model/kernels.c"]
    assert not [n for n in artifact.notices if n.path == ONE_ROW_TILES]
    # One tile per window of a pair of rows: 13 pairs (the last row alone) of 5 columns,
    # the tile the notice at the smaller capacitor quoted.
    plan = artifact.tiles[KERNEL]
    assert plan.extent == 13 * 5
    [notice] = [n for n in small.notices if n.path == ONE_ROW_TILES]
    assert plan.tile_instructions == _miss(notice.reason)[0]


def test_neither_tile_fits_is_refused(model, tmp_path, capsys):
    path, _ = model
    with pytest.raises(DoesNotFitError, match=rf"operator {KERNEL}: its smallest tile .* "
                                              r"needs about \d{3} instructions"):
        _build(path, TOO_SMALL_F)
    out = tmp_path / "out"
    status = cli_main(["compile", str(path), "--board", BOARD, "--capacitor", "0.09uF",
                       "-o", str(out)])
    captured = capsys.readouterr()
    assert status == 2 and not out.exists()
    assert f"operator {KERNEL}" in captured.err and "Traceback" not in captured.err
