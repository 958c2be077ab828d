"""The TVM plugin: `import tvm` alone registers our target tags and Relax pipeline."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from tvm_intermittent.board import list_boards, load_board
from tvm_intermittent.errors import BoardError

import pytest


def test_import_tvm_registers_tags_and_pipeline_through_the_entry_point():
    code = (
        "import tvm\n"
        "from tvm import relax\n"
        "t = tvm.target.Target('intermittent/msp430fr5994')\n"
        "print(t.kind.name, t.attrs['model'], t.attrs['mcpu'])\n"
        "print(callable(relax.get_pipeline('intermittent')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["c", "msp430fr5994", "cortex-m4", "True"]


def test_shipped_boards_and_their_documented_sizes():
    assert {"qemu-an386", "msp430fr5994", "apollo4-mram"} <= set(list_boards())
    msp = load_board("intermittent/msp430fr5994")
    assert (msp.sram_bytes, msp.nvm_bytes, msp.clock_hz) == (8192, 262144, 16_000_000)
    for name in list_boards():
        board = load_board(name)
        undocumented = [k for k in ("sram_bytes", "active_power_w", "capacitor_f",
                                    "nvm_read_wait_cycles", "nvm_write_wait_cycles",
                                    "nvm_read_energy_j", "nvm_write_energy_j")
                        if not any(k in key.split(", ") for key in board.sources)]
        assert not undocumented, f"{name}: no source for {undocumented}"
        assert not [k for k in board.sources if "per_byte" in k], name


def test_nvm_costs_of_the_profiles():
    """The NVM figures the profiles state: one FRAM wait state above 8 MHz and none at 8,
    MRAM writes slower and costlier than reads; every access costs more than nothing on
    the real parts."""
    fram, fram8, mram = (load_board(n) for n in ("msp430fr5994", "msp430-sim", "apollo4-mram"))
    assert fram.clock_hz > 8e6 and fram.nvm_read_wait_cycles == fram.nvm_write_wait_cycles == 1
    assert fram8.clock_hz <= 8e6 and fram8.nvm_read_wait_cycles == 0
    assert mram.nvm_write_wait_cycles > mram.nvm_read_wait_cycles > 0
    assert mram.nvm_write_energy_j > mram.nvm_read_energy_j > 0
    for board in (fram, fram8, mram):
        assert board.nvm_read_energy_j > 0 and board.nvm_write_energy_j > 0
    with pytest.raises(BoardError, match="nvm_read_wait_cycles must be >= 0"):
        dataclasses.replace(fram, nvm_read_wait_cycles=-1)


def test_power_cycle_budget_follows_the_capacitor_equation():
    board = load_board("msp430fr5994")
    energy = 0.5 * 100e-6 * (board.v_on**2 - board.v_off**2)
    per_instruction = board.active_power_w * board.cycles_per_instruction / board.clock_hz
    assert board.power_cycle_budget(100e-6) == int(energy / per_instruction)
    assert board.power_cycle_budget(1e-3) > 9 * board.power_cycle_budget(100e-6)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(BoardError, match="msp430fr5994"):
        load_board("esp32")


def test_docs_list_every_profile_as_shipped():
    """docs/boards.md states each profile's values and sources: they must not drift."""
    docs = (Path(__file__).parents[1] / "docs" / "boards.md").read_text()
    for name in list_boards():
        board = load_board(name)
        section = docs.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", section, re.MULTILINE))
        for field in ("sram_bytes", "clock_hz", "nvm_read_wait_cycles", "nvm_write_wait_cycles",
                      "nvm_read_energy_j", "nvm_write_energy_j", "active_power_w"):
            assert rows[field] == str(getattr(board, field)), (name, field)
        for key, text in board.sources.items():
            assert f"- `{key}`: {text}" in section, (name, key)
