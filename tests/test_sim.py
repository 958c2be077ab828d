"""Simulator tests on a hand-written fake model (tests/fixtures/fake_model).

The fake model computes ``y = 2 x + 1`` on float32[1, 4] and a saturating ``2 q + 1`` on
int8[8], so every output is known exactly. Tiers: pure Python (input checks, project files);
host build (needs ``cc``); QEMU (marked ``qemu``, needs qemu-system-arm and arm-none-eabi-gcc).
"""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tvm_intermittent import sim
from tvm_intermittent.board import load_board
from tvm_intermittent.codegen.project_files import copy_support_files
from tvm_intermittent.errors import BoardError, DoesNotFitError, InputError, SimulationError

FIXTURE = Path(__file__).parent / "fixtures" / "fake_model"
NVM_BASE = 0x21000000


def _skip_without_qemu():
    for available, reason in (sim.toolchain_available(), sim.qemu_available()):
        if not available:
            pytest.skip(reason)


def _skip_without_host_cc():
    available, reason = sim.host_compiler_available()
    if not available:
        pytest.skip(reason)


def export_fake(dst: Path, board="qemu-an386", prelude="", model_patch=None) -> Path:
    """Copy the fake model to ``dst`` and add the support files, as the exporter would.

    ``prelude`` goes at the top of model.c (e.g. to size the scratch buffer) and
    ``model_patch`` is an ``(old, new)`` text replacement inside model.c.
    """
    shutil.copytree(FIXTURE, dst)
    model_c = dst / "model" / "model.c"
    text = prelude + model_c.read_text()
    if model_patch is not None:
        old, new = model_patch
        assert old in text
        text = text.replace(old, new)
    model_c.write_text(text)
    copy_support_files(dst, board)
    return dst


def fake_inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 4)).astype(np.float32)
    q = rng.integers(-128, 128, size=8).astype(np.int8)
    return [x, q]


def fake_reference(x, q):
    y = (np.float32(2) * x + np.float32(1)).astype(np.float32)
    r = np.clip(2 * q.astype(np.int32) + 1, -128, 127).astype(np.int8)
    return [y, r]


@pytest.fixture(scope="module")
def fake_project(tmp_path_factory):
    return export_fake(tmp_path_factory.mktemp("sim") / "fake")


# ---- Pure Python ----------------------------------------------------------------------


def test_wrong_input_shape_raises_input_error(fake_project):
    x, q = fake_inputs()
    with pytest.raises(InputError, match=r"'x'.*expected shape \(1, 4\) float32.*got shape \(4,\)"):
        sim.run(fake_project, [x.reshape(4), q])


def test_wrong_dtype_and_count_raise_input_error(fake_project):
    x, q = fake_inputs()
    with pytest.raises(InputError, match=r"'q'.*int8.*got shape \(8,\) float32"):
        sim.run(fake_project, [x, q.astype(np.float32)])
    with pytest.raises(InputError, match="takes 2 input"):
        sim.run(fake_project, [x])


def test_support_files_fill_board_sizes(tmp_path):
    project = export_fake(tmp_path / "p", board="msp430fr5994")
    linker = (project / "bsp" / "qemu_an386" / "linker.ld").read_text()
    makefile = (project / "Makefile").read_text()
    assert "LENGTH = 8192" in linker and "LENGTH = 262144" in linker
    assert re.search(r"^MODEL_NAME := fake$", makefile, re.MULTILINE)
    assert not re.search(r"@[A-Z_]+@", linker + makefile)
    assert (project / "runtime" / "intm_main.c").is_file()
    assert (project / "bsp" / "qemu_an386" / "startup.c").is_file()


def test_board_larger_than_emulator_is_rejected(tmp_path):
    board = dataclasses.replace(load_board("qemu-an386"), sram_bytes=8 * 1024 * 1024)
    with pytest.raises(BoardError, match="sram_bytes"):
        copy_support_files(tmp_path, board)


# ---- Host build -----------------------------------------------------------------------


@pytest.mark.host_cc
def test_host_run_matches_numpy(fake_project):
    _skip_without_host_cc()
    inputs = fake_inputs(seed=1)
    result = sim.run(fake_project, inputs, kind="host")
    for got, want in zip(result.outputs, fake_reference(*inputs)):
        np.testing.assert_array_equal(got, want)
    assert result.instructions_total is None and result.instructions_model is None


@pytest.mark.host_cc
def test_plugin_is_built_once(tmp_path, monkeypatch):
    _skip_without_host_cc()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = sim.plugin_path()
    assert first.is_file() and first.parent == tmp_path / "tvm-intermittent"
    mtime = first.stat().st_mtime_ns
    assert sim.plugin_path() == first and first.stat().st_mtime_ns == mtime


# ---- QEMU -----------------------------------------------------------------------------


@pytest.mark.qemu
def test_qemu_run_matches_numpy_and_counts(fake_project):
    _skip_without_qemu()
    inputs = fake_inputs(seed=2)
    first = sim.run(fake_project, inputs)
    for got, want in zip(first.outputs, fake_reference(*inputs)):
        np.testing.assert_array_equal(got, want)
    assert first.exit_status == 0
    assert len(first.marks) == 2
    assert 0 < first.instructions_model < first.instructions_total
    assert first.instructions_scrub > 0

    second = sim.run(fake_project, inputs)
    assert (second.instructions_total, second.marks, second.instructions_scrub) == (
        first.instructions_total, first.marks, first.instructions_scrub)


@pytest.mark.qemu
@pytest.mark.host_cc
def test_qemu_and_host_agree(fake_project):
    _skip_without_qemu()
    _skip_without_host_cc()
    inputs = fake_inputs(seed=3)
    on_qemu = sim.run(fake_project, inputs)
    on_host = sim.run(fake_project, inputs, kind="host")
    for a, b in zip(on_qemu.outputs, on_host.outputs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.qemu
def test_firmware_has_no_tvm_runtime_or_heap(fake_project):
    _skip_without_qemu()
    elf = sim.build_project(fake_project)
    assert sim.forbidden_symbols(elf) == []
    sizes = sim.section_sizes(elf)
    assert sizes["text"] > 0 and sizes["stack"] == 1024 and sizes["nvm"] >= 4
    usage = sim.stack_usage(fake_project / "build" / "qemu")
    assert "main" in usage and "intm_model_run" in usage


@pytest.mark.qemu
def test_nvm_is_in_no_load_segment(fake_project):
    _skip_without_qemu()
    elf = sim.build_project(fake_project)
    assert sim.symbols(elf)["intm_fake_runs"][0] == NVM_BASE
    headers = subprocess.run(["arm-none-eabi-readelf", "-lW", str(elf)], capture_output=True,
                             text=True, check=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            vaddr, paddr, memsz = int(fields[2], 16), int(fields[3], 16), int(fields[5], 16)
            for start in (vaddr, paddr):
                assert not start <= NVM_BASE < start + memsz, line


@pytest.mark.qemu
def test_fits_small_board(tmp_path):
    _skip_without_qemu()
    project = export_fake(tmp_path / "small", board="msp430fr5994")
    inputs = fake_inputs(seed=4)
    result = sim.run(project, inputs)
    for got, want in zip(result.outputs, fake_reference(*inputs)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.qemu
def test_sram_overflow_fails_to_link(tmp_path):
    _skip_without_qemu()
    # 4096 floats = 16 KiB of scratch on an 8 KiB board.
    project = export_fake(tmp_path / "big", board="msp430fr5994",
                          prelude="#define FAKE_SCRATCH_FLOATS 4096\n")
    with pytest.raises(DoesNotFitError, match=r"SRAM overflowed by \d+ bytes.*8192.*"
                                              r"\.intm_noinit.*intm_fake_scratch 16384 B"):
        sim.build_project(project)


@pytest.mark.qemu
def test_fault_reports_and_exits(tmp_path):
    _skip_without_qemu()
    project = export_fake(tmp_path / "fault", model_patch=(
        "  intm_fake_runs += 1;",
        "  volatile int zero = 0;\n  intm_fake_r[0] = (int8_t)(100 / zero);",
    ))
    with pytest.raises(SimulationError, match=r"(?s)status 134 \(CPU fault: UsageFault.*"
                                              r"intm: fault: UsageFault \(exception 6\) pc=0x"):
        sim.run(project, fake_inputs())


@pytest.mark.qemu
def test_reset_reboots_cleanly_and_keeps_nvm(tmp_path):
    """A system reset re-enters the reset handler: .data and .bss start over, NVM survives.

    The model requests SYSRESETREQ until its NVM counter reaches 4, then writes the counter
    to r[0]; every boot checks that .data and .bss were re-initialised.
    """
    _skip_without_qemu()
    project = export_fake(tmp_path / "reset", model_patch=("  intm_fake_runs += 1;", """
  intm_fake_runs += 1;
  static int data_word = 7;
  static int bss_word;
  if (data_word != 7 || bss_word != 0) return INTM_ERROR_KERNEL;
  data_word = 8;
  bss_word = 1;
  if (intm_fake_runs < 4) {
    *(volatile uint32_t*)0xE000ED0Cu = (0x5FAu << 16) | (1u << 2); /* AIRCR.SYSRESETREQ */
    for (;;) {
    }
  }
  intm_fake_r[0] = (int8_t)intm_fake_runs;"""))
    once = sim.run(export_fake(tmp_path / "once"), fake_inputs())
    result = sim.run(project, fake_inputs())
    assert result.outputs[1][0] == 4
    assert len(result.marks) == 5  # one mark per boot before the run, one after the last
    assert result.instructions_scrub == 4 * once.instructions_scrub


#: A routine of known memory traffic, as the first task of the fake model: task 0 makes
#: exactly the accesses below, and task 1 (one `bx lr`) ends its segment right after.
#: The addresses come from movw/movt, so no literal-pool load from flash interferes.
_TRAFFIC_TASKS = r"""#include <stdint.h>
__attribute__((section(".intm_nvm"), aligned(8))) uint32_t intm_fake_words[8];
uint32_t intm_fake_sram_word;

__attribute__((naked, noinline, used)) void intm_task_0(void) {
  __asm__ volatile(
      "push {r4-r7}\n"                   /* SRAM: 4 stores, 16 B (the stack) */
      "movw r0, #:lower16:intm_fake_words\n"
      "movt r0, #:upper16:intm_fake_words\n"
      "ldr r1, [r0]\n"                   /* NVM: load 4 B */
      "ldrb r2, [r0, #4]\n"              /* NVM: load 1 B */
      "ldrh r3, [r0, #6]\n"              /* NVM: load 2 B */
      "str r1, [r0, #8]\n"               /* NVM: store 4 B */
      "strb r2, [r0, #12]\n"             /* NVM: store 1 B */
      "strh r3, [r0, #14]\n"             /* NVM: store 2 B */
      "ldm r0, {r4-r7}\n"                /* NVM: 4 loads, 16 B */
      "stm r0, {r4-r7}\n"                /* NVM: 4 stores, 16 B */
      "ldrd r2, r3, [r0, #16]\n"         /* NVM: 2 loads, 8 B */
      "movw r1, #:lower16:intm_fake_sram_word\n"
      "movt r1, #:upper16:intm_fake_sram_word\n"
      "ldr r2, [r1]\n"                   /* SRAM: load 4 B */
      "str r2, [r1]\n"                   /* SRAM: store 4 B */
      "pop {r4-r7}\n"                    /* SRAM: 4 loads, 16 B */
      "bx lr\n");
}

__attribute__((naked, noinline, used)) void intm_task_1(void) { __asm__ volatile("bx lr\n"); }

void intm_task_0(void);
void intm_task_1(void);
"""


@pytest.mark.qemu
def test_plugin_counts_loads_and_stores_exactly(tmp_path):
    """Every access of the routine above is counted with its size, an LDM/STM as one access
    per register and an LDRD as two; NVM and SRAM apart; flash (code) in neither; and all of
    it attributed to task 0, whose segment runs from its entry to task 1's."""
    _skip_without_qemu()
    project = export_fake(tmp_path / "traffic", prelude=_TRAFFIC_TASKS, model_patch=(
        "intm_status_t intm_model_run(void) {\n",
        "intm_status_t intm_model_run(void) {\n  intm_task_0();\n  intm_task_1();\n"))
    inputs = fake_inputs(seed=5)
    result = sim.run(project, inputs, functions=("intm_task_0",))
    for got, want in zip(result.outputs, fake_reference(*inputs)):
        np.testing.assert_array_equal(got, want)
    task = result.traffic_by_task[0]
    assert (task.nvm_loads, task.nvm_load_bytes) == (1 + 1 + 1 + 4 + 2, 4 + 1 + 2 + 16 + 8)
    assert (task.nvm_stores, task.nvm_store_bytes) == (1 + 1 + 1 + 4, 4 + 1 + 2 + 16)
    # 18 instructions in the routine (range count) and the BL to task 1 in the caller.
    assert result.range_instructions["intm_task_0"] == 18
    assert task.instructions == 18 + 1
    # A counted range that is not the commit or restore leaves its work in its segment.
    assert result.range_traffic["intm_task_0"] == sim.qemu.Work()

    # The same firmware calling task 1 in place of task 0 (the caller's frame unchanged):
    # the difference is exactly the routine's.
    plain = sim.run(export_fake(tmp_path / "plain", prelude=_TRAFFIC_TASKS, model_patch=(
        "intm_status_t intm_model_run(void) {\n",
        "intm_status_t intm_model_run(void) {\n  intm_task_1();\n  intm_task_1();\n")), inputs)
    assert result.traffic.nvm_loads - plain.traffic.nvm_loads == 9
    assert result.traffic.nvm_store_bytes - plain.traffic.nvm_store_bytes == 23
    assert result.nvm_bytes_written - plain.nvm_bytes_written == 23
    # The routine's SRAM accesses (its stack frame and one word).
    assert result.sram_by_task[0] == {"sram_loads": 5, "sram_stores": 5,
                                      "sram_load_bytes": 20, "sram_store_bytes": 20}

    # The phases partition the run, and the whole run is the instruction count.
    assert tuple(result.traffic_by_phase) == sim.PHASES
    total = sum(result.traffic_by_phase.values(), sim.qemu.Work())
    assert total == result.traffic
    assert result.traffic.instructions == result.instructions_total
    assert result.traffic.nvm_store_bytes == result.nvm_bytes_written
    assert result.traffic_by_phase["boot"].instructions > 0
    assert result.traffic_by_phase["input"].instructions > 0
    assert result.traffic_by_phase["output"].instructions > 0
    assert result.per_boot_nvm_loads == [result.traffic.nvm_loads]
    assert result.per_boot_nvm_stores == [result.traffic.nvm_stores]
