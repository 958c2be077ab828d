"""The MSP430 board profile and project files, in pure Python (no toolchain needed)."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tvm_intermittent import sim
from tvm_intermittent.board import load_board
from tvm_intermittent.codegen.address_space import address_space_problems
from tvm_intermittent.codegen.project_files import copy_support_files
from tvm_intermittent.errors import BoardError

FIXTURES = Path(__file__).parent / "fixtures"


def test_profile_isa_and_scale():
    board = load_board("msp430-sim")
    assert board.isa == "msp430" and load_board("qemu-an386").isa == "arm"
    # The tiler's budget is the charge's MSP430 instructions in Cortex-M4 instructions.
    assert board.tile_budget() == int(board.power_cycle_budget() / board.instruction_scale)
    arm = load_board("qemu-an386")
    assert arm.tile_budget() == arm.power_cycle_budget()
    with pytest.raises(BoardError, match="isa must be one of arm, msp430"):
        dataclasses.replace(board, isa="x86")
    with pytest.raises(BoardError, match="instruction_scale must be >= 1"):
        dataclasses.replace(board, instruction_scale=0.5)


def test_msp430_project_has_both_bsps_and_the_mailbox_sizes(tmp_path):
    project = tmp_path / "arith"
    shutil.copytree(FIXTURES / "msp430_arith", project)
    copy_support_files(project, "msp430-sim")
    assert (project / "bsp" / "qemu_an386" / "linker.ld").is_file()
    bsp = project / "bsp" / "msp430_sim"
    for name in ("startup.S", "intm_mspabi.S", "intm_libc.c", "intm_softfloat.c",
                 "intm_platform_msp430.c", "include/string.h", "linker.ld"):
        assert (bsp / name).is_file(), name
    meta = json.loads((project / "model.json").read_text())
    sizes = {side: sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                       for t in meta[side]) for side in ("inputs", "outputs")}
    config = (bsp / "intm_io_config.h").read_text()
    assert f"INTM_IO_INPUT_BYTES {sizes['inputs']}u" in config
    assert f"INTM_IO_OUTPUT_BYTES {sizes['outputs']}u" in config
    linker = (bsp / "linker.ld").read_text()
    assert re.search(r"SRAM\s+\(rwx\) : ORIGIN = 0x1C00, LENGTH = 8192", linker)
    assert re.search(r"FRAM\s+\(rwx\) : ORIGIN = 0x4000, LENGTH = 49024", linker)
    assert sim.project_isa(project) == "msp430" and sim.default_kind(project) == "msp430"


def test_arm_project_has_no_msp430_bsp(tmp_path):
    project = tmp_path / "fake"
    shutil.copytree(FIXTURES / "fake_model", project)
    copy_support_files(project, "qemu-an386")
    assert not (project / "bsp" / "msp430_sim").exists()
    assert sim.default_kind(project) == "qemu"


def test_address_space_counts_weights_and_arena():
    board = load_board("msp430-sim")
    assert address_space_problems(40_000, 9_024, board) == []
    (problem,) = address_space_problems(40_000, 9_025, board)
    assert "40,000 bytes" in problem and "9,025 bytes" in problem and "49,024" in problem
    assert address_space_problems(10**7, 10**7, load_board("qemu-an386")) == []


def test_msp430_board_too_large_for_the_address_space(tmp_path):
    project = tmp_path / "fake"
    shutil.copytree(FIXTURES / "fake_model", project)
    board = dataclasses.replace(load_board("msp430-sim"), sram_bytes=16384)
    with pytest.raises(BoardError, match="sram_bytes=16384 exceeds"):
        copy_support_files(project, board)
