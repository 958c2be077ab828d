"""The C runtime on the host: the progress record's commits, and the one table of statuses.

Tiers: pure Python (the generated status header), host-compiled C (``cc``: the progress
record of ``runtime/intm_progress.c`` and the status header, compiled as they ship). The
QEMU tests of the runtime (DONE phase, other firmware's NVM, -flto, the device loop) are in
tests/test_runtime_qemu.py.
"""

import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from tvm_intermittent import errors
from tvm_intermittent.codegen.project_files import copy_support_files
from tvm_intermittent.errors import ExitStatus, FirmwareStatus

RUNTIME = resources.files("tvm_intermittent").joinpath("runtime")


def _compile_and_run(tmp_path: Path, source: str, *sources: str, includes=()) -> str:
    """Build ``source`` with the package's runtime files ``sources`` and run it.

    Returns its stdout; fails the test with the compiler's or the program's output."""
    (tmp_path / "t.c").write_text(source)
    with resources.as_file(RUNTIME) as rt:
        build = subprocess.run(
            ["cc", "-std=c99", "-O2", "-Wall", "-Werror", *(f"-I{d}" for d in includes),
             f"-I{rt}", "t.c", *(str(rt / s) for s in sources), "-o", "t"],
            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# ---- statuses --------------------------------------------------------------------------


def test_package_status_header_is_the_generated_one():
    """The copy in the package (for code compiled straight from it) is what errors.py
    generates today: editing one without the other fails here."""
    shipped = RUNTIME.joinpath("intm_status.h").read_text()
    assert shipped == errors.status_header(), (
        "runtime/intm_status.h is stale: regenerate it with "
        "errors.write_status_header()")


def test_export_writes_the_status_header_from_errors(tmp_path, monkeypatch):
    """An export writes intm_status.h from the table, not from the package copy."""
    monkeypatch.setattr(errors, "status_header", lambda: "/* from the table */\n")
    monkeypatch.setattr("tvm_intermittent.codegen.project_files.status_header",
                        errors.status_header)
    written = copy_support_files(tmp_path, "qemu-an386", model_name="m")
    header = tmp_path / "runtime" / "intm_status.h"
    assert header in written and header.read_text() == "/* from the table */\n"


def test_no_runtime_source_defines_a_status_of_its_own():
    """intm_status.h is the only C definition of the status values."""
    pattern = re.compile(r"INTM_(OK|ERROR_\w+)\s*=|#define\s+INTM_(OK|ERROR_\w+)\b")
    package = resources.files("tvm_intermittent")
    offenders = []
    for folder in ("runtime", "runtime/examples", "bsp/qemu_an386"):
        for entry in package.joinpath(folder).iterdir():
            if entry.name.endswith((".c", ".h")) and entry.name != "intm_status.h":
                if pattern.search(entry.read_text()):
                    offenders.append(f"{folder}/{entry.name}")
    assert not offenders


@pytest.mark.host_cc
def test_c_statuses_and_texts_agree_with_the_python_table(tmp_path):
    """Compiled C gives every status the value, console text and fault base of errors.py."""
    lines = [f'  printf("%d %s\\n", (int)INTM_{m.name}, intm_status_text(INTM_{m.name}));'
             for m in FirmwareStatus]
    names = [f'  printf("exception %u %s\\n", {n}u, intm_exception_name({n}u));'
             for n in (3, 6, 15, 16, 7)]
    source = ("#include <stdio.h>\n#include \"intm_status.h\"\nint main(void) {\n"
              + "\n".join(lines + names)
              + '\n  printf("base %d\\n", INTM_FAULT_STATUS_BASE);\n  return 0;\n}\n')
    out = _compile_and_run(tmp_path, source).splitlines()
    statuses = [line.split(" ", 1) for line in out[:len(FirmwareStatus)]]
    assert statuses == [[str(m.value), m.text] for m in FirmwareStatus]
    assert out[len(FirmwareStatus):] == [
        "exception 3 HardFault", "exception 6 UsageFault", "exception 15 SysTick",
        "exception 16 unexpected interrupt", "exception 7 reserved exception", "base 128"]


def test_firmware_statuses_map_to_cli_statuses_and_messages():
    assert errors.cli_status_for_firmware(0) == ExitStatus.OK
    for status in (1, 2, 3, 4, 131, 133):
        assert errors.cli_status_for_firmware(status) == ExitStatus.RUN_FAILED
    assert errors.explain_firmware_status(4) == FirmwareStatus.ERROR_NO_PROGRESS.meaning
    assert errors.explain_firmware_status(131) == "CPU fault: HardFault (exception 3)"
    assert errors.explain_firmware_status(128 + 20) == "CPU fault: interrupt (exception 20)"
    assert errors.explain_firmware_status(-9) == "killed by signal 9"
    assert errors.explain_firmware_status(77) == "unknown status"
    # The simulator's error carries the firmware's status; the CLI's follows from it.
    fault = errors.SimulationError("crashed", firmware_status=131)
    assert fault.firmware_status == 131 and fault.exit_status == ExitStatus.RUN_FAILED
    assert errors.SimulationError("timed out").exit_status == ExitStatus.RUN_FAILED


# ---- the progress record ---------------------------------------------------------------

#: Test program around intm_progress.c. The platform's log goes to stdout, so the test sees
#: what the firmware would print; each CHECK names the line that failed.
_PROGRESS_MAIN = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "intm_progress.h"

void intm_platform_log(const char* m) { fputs(m, stdout); }
void intm_platform_exit(int s) { printf("exit %d\n", s); exit(s); }
void intm_test_tear_last_commit(void);
void intm_test_tear_slot(int slot);
void intm_test_seal_slot(int slot, uint32_t layout, uint32_t hash, uint32_t sequence,
                         uint32_t phase, uint32_t task, uint32_t tile);

#define CHECK(cond) do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); \
                                        exit(1); } } while (0)
#define OURS 0xAAAAu
#define LAYOUT_WORD (INTM_RECORD_MAGIC | INTM_RECORD_LAYOUT)

static intm_resume_point_t at(uint32_t phase, uint32_t task, uint32_t tile) {
  intm_resume_point_t p = {(intm_phase_t)phase, task, tile};
  return p;
}

static int same(intm_resume_point_t a, intm_resume_point_t b) {
  return a.phase == b.phase && a.task == b.task && a.tile == b.tile;
}

int main(int argc, char** argv) {
  const char* test = argc > 1 ? argv[1] : "";
  intm_resume_point_t r;
  if (strcmp(test, "slots") == 0) {
    r = intm_progress_restore(OURS);
    CHECK(r.phase == INTM_PHASE_FRESH);               /* blank NVM: a new device */
    intm_resume_point_t p = at(INTM_PHASE_RUNNING, 3, 7);
    intm_progress_commit(&p);
    CHECK(same(intm_progress_restore(OURS), p));
    CHECK(intm_progress_restore(0xBBBBu).phase == INTM_PHASE_FRESH); /* other firmware */
    r = intm_progress_restore(OURS);
    intm_resume_point_t q = at(INTM_PHASE_RUNNING, 4, 0);
    intm_progress_commit(&q);
    CHECK(same(intm_progress_restore(OURS), q));
    intm_resume_point_t torn = at(INTM_PHASE_DONE, 9, 9);
    intm_progress_commit(&torn);
    intm_test_tear_last_commit();                     /* a failure before its check word */
    CHECK(same(intm_progress_restore(OURS), q));
  } else if (strcmp(test, "wrap") == 0) {
    /* Committed progress 0xFFFFFFFD in slot 0, nothing in slot 1: commit across the wrap. */
    intm_test_seal_slot(0, LAYOUT_WORD, OURS, 0xFFFFFFFDu, INTM_PHASE_RUNNING, 0, 1);
    for (uint32_t i = 2; i < 8; ++i) {
      r = intm_progress_restore(OURS);
      CHECK(r.tile == i - 1);                        /* the newest commit, before and after */
      intm_resume_point_t p = at(INTM_PHASE_RUNNING, 0, i);
      intm_progress_commit(&p);                       /* sequences ...FE, FF, 0, 1, 2, 3 */
    }
    CHECK(intm_progress_restore(OURS).tile == 7);
    /* A torn commit right after the wrap keeps the record before it. */
    intm_test_seal_slot(0, LAYOUT_WORD, OURS, 0xFFFFFFFFu, INTM_PHASE_RUNNING, 1, 1);
    intm_test_seal_slot(1, LAYOUT_WORD, OURS, 0x00000000u, INTM_PHASE_RUNNING, 1, 2);
    CHECK(intm_progress_restore(OURS).tile == 2);     /* 0 is later than 0xFFFFFFFF */
    intm_resume_point_t p = at(INTM_PHASE_RUNNING, 1, 3);
    intm_progress_commit(&p);                          /* into slot 0, sequence 1 */
    intm_test_tear_last_commit();
    CHECK(intm_progress_restore(OURS).tile == 2);
  } else if (strcmp(test, "foreign-hash") == 0) {
    intm_test_seal_slot(1, LAYOUT_WORD, 0x0BADF00Du, 5, INTM_PHASE_DONE, 2, 0);
    CHECK(intm_progress_restore(OURS).phase == INTM_PHASE_FRESH);
    intm_resume_point_t p = at(INTM_PHASE_RUNNING, 0, 0);
    intm_progress_commit(&p);                          /* ours now: reported no more */
    CHECK(same(intm_progress_restore(OURS), p));
  } else if (strcmp(test, "foreign-layout") == 0) {
    /* A later layout of the same model: its check cannot be verified, it is not ours. */
    intm_test_seal_slot(0, INTM_RECORD_MAGIC | 3u, OURS, 9, INTM_PHASE_DONE, 2, 0);
    CHECK(intm_progress_restore(OURS).phase == INTM_PHASE_FRESH);
  } else if (strcmp(test, "garbage") == 0) {
    /* Never written, or garbled: no magic, our own layout with a wrong check, or a phase
     * out of range under another hash. None of them is reported. */
    intm_test_seal_slot(0, 0x12345678u, OURS, 1, INTM_PHASE_DONE, 0, 0);
    intm_test_seal_slot(1, LAYOUT_WORD, OURS, 2, INTM_PHASE_DONE, 0, 0);
    CHECK(intm_progress_restore(OURS).phase == INTM_PHASE_DONE); /* slot 1 is intact */
    intm_test_tear_slot(1);
    CHECK(intm_progress_restore(OURS).phase == INTM_PHASE_FRESH);
    intm_test_seal_slot(1, LAYOUT_WORD, OURS + 1u, 2, 7u, 0, 0);
    CHECK(intm_progress_restore(OURS).phase == INTM_PHASE_FRESH);
  } else if (strcmp(test, "livelock") == 0) {
    for (unsigned i = 0; i < INTM_MAX_FUTILE_BOOTS; ++i) (void)intm_progress_restore(OURS);
    printf("survived %u\n", INTM_MAX_FUTILE_BOOTS);
    (void)intm_progress_restore(OURS);                /* one too many: exits with 4 */
    CHECK(0);
  } else {
    CHECK(!"unknown test");
  }
  printf("ok\n");
  return 0;
}
'''


@pytest.fixture(scope="module")
def progress_program(tmp_path_factory):
    """The test program, built once with -DINTM_PROGRESS_TESTING."""
    tmp = tmp_path_factory.mktemp("progress")
    (tmp / "t.c").write_text(_PROGRESS_MAIN)
    with resources.as_file(RUNTIME) as rt:
        build = subprocess.run(
            ["cc", "-std=c99", "-O2", "-Wall", "-Werror", "-DINTM_PROGRESS_TESTING", f"-I{rt}",
             "t.c", str(rt / "intm_progress.c"), "-o", "t"],
            cwd=tmp, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    return tmp / "t"


def _progress(program, test):
    proc = subprocess.run([str(program), test], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout


FOREIGN = "intm: NVM holds progress of other firmware"


@pytest.mark.host_cc
def test_commits_alternate_slots_and_a_torn_slot_is_ignored(progress_program):
    """Another model hash reads as FRESH; a slot whose check word was cleared mid-commit
    loses to the committed one."""
    status, out = _progress(progress_program, "slots")
    assert status == 0 and out.endswith("ok\n"), out


@pytest.mark.host_cc
def test_sequence_number_wraps(progress_program):
    """Commits from 0xFFFFFFFD across 0: restore returns the newest every time (a plain
    ``>`` would return the record before the wrap and lose every later commit)."""
    status, out = _progress(progress_program, "wrap")
    assert status == 0 and out.endswith("ok\n"), out


@pytest.mark.host_cc
def test_other_firmware_record_is_reported_once_and_not_resumed(progress_program):
    status, out = _progress(progress_program, "foreign-hash")
    assert status == 0 and out.endswith("ok\n"), out
    line = (f"{FOREIGN} (hash 0x0badf00d, layout {_record_layout()}); starting a new "
            "inference\n")
    assert out.count(FOREIGN) == 1 and line in out


@pytest.mark.host_cc
def test_record_of_another_layout_is_reported_and_not_resumed(progress_program):
    status, out = _progress(progress_program, "foreign-layout")
    assert status == 0 and out.endswith("ok\n"), out
    assert f"{FOREIGN} (hash 0x0000aaaa, layout 3); starting a new inference\n" in out


@pytest.mark.host_cc
def test_blank_or_garbled_nvm_is_silent(progress_program):
    status, out = _progress(progress_program, "garbage")
    assert status == 0 and out == "ok\n", out


@pytest.mark.host_cc
def test_livelock_guard_exits_with_no_progress(progress_program):
    status, out = _progress(progress_program, "livelock")
    assert status == FirmwareStatus.ERROR_NO_PROGRESS, out
    assert out.startswith("survived 16\n") and "exit 4" in out


def _record_layout() -> int:
    header = RUNTIME.joinpath("intm_progress.h").read_text()
    return int(re.search(r"#define INTM_RECORD_LAYOUT (\d+)u", header).group(1))


# ---- the device loop -------------------------------------------------------------------

#: A two-task model in miniature for intm_app.c: task 0 has 4 tiles committed 2 at a time,
#: task 1 has 3 tiles committed 1 at a time; each tile counts its runs.
_LOOP_MODEL_H = r'''
#ifndef INTM_MODEL_H_
#define INTM_MODEL_H_
#include "intm_runtime.h"
#define INTM_MODEL_NUM_INPUTS 1
#define INTM_MODEL_NUM_OUTPUTS 1
#define INTM_MODEL_NUM_TASKS 2u
extern const intm_tensor_desc_t intm_model_inputs[INTM_MODEL_NUM_INPUTS];
extern const intm_tensor_desc_t intm_model_outputs[INTM_MODEL_NUM_OUTPUTS];
extern const intm_task_t intm_model_tasks[INTM_MODEL_NUM_TASKS];
extern const uint32_t intm_model_hash;
void* intm_model_input(int index);
const void* intm_model_output(int index);
intm_status_t intm_model_run(void);
#endif
'''

_LOOP_MAIN = r'''
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include "intm_app.h"
#include "model.h"

void intm_platform_log(const char* m) { fputs(m, stdout); }
void intm_platform_exit(int s) { printf("exit %d\n", s); exit(s); }

static int32_t input_value, output_value, sample = 10;
static int tile_runs[2], senses, acts, fail_in_task1;
static jmp_buf power_failure;

const intm_tensor_desc_t intm_model_inputs[1] = {{"x", INTM_INT32, 1, {1}, 4, 0.0f, 0}};
const intm_tensor_desc_t intm_model_outputs[1] = {{"y", INTM_INT32, 1, {1}, 4, 0.0f, 0}};
const uint32_t intm_model_hash = 0x5EED5EEDu;
void* intm_model_input(int index) { return index == 0 ? &input_value : NULL; }
const void* intm_model_output(int index) { return index == 0 ? &output_value : NULL; }
intm_status_t intm_model_run(void) { return INTM_OK; }

static void task0(int32_t begin, int32_t end) { tile_runs[0] += end - begin; }
static void task1(int32_t begin, int32_t end) {
  if (fail_in_task1) { fail_in_task1 = 0; longjmp(power_failure, 1); }
  tile_runs[1] += end - begin;
  output_value = 2 * input_value;
}
const intm_task_t intm_model_tasks[2] = {{task0, 4, 2, "t0"}, {task1, 3, 1, "t1"}};

static intm_status_t sense(void* context) { (void)context; input_value = sample++; ++senses;
                                            return INTM_OK; }
static intm_status_t act(void* context) { (void)context; ++acts; return INTM_OK; }

#define CHECK(cond) do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); \
                                        exit(1); } } while (0)

int main(void) {
  const intm_app_t app = {sense, act, NULL};
  CHECK(intm_infer(&app) == INTM_OK);
  CHECK(senses == 1 && acts == 1 && tile_runs[0] == 4 && tile_runs[1] == 3);
  CHECK(output_value == 20);
  /* DONE: another start (no intm_next_inference) delivers again and computes nothing. */
  CHECK(intm_infer(&app) == INTM_OK);
  CHECK(senses == 1 && acts == 2 && tile_runs[0] == 4 && tile_runs[1] == 3);
  /* The next inference senses a new sample. */
  CHECK(intm_next_inference() == INTM_OK);
  fail_in_task1 = 1;
  if (setjmp(power_failure) == 0) {
    (void)intm_infer(&app);
    CHECK(!"the power failure did not happen");
  }
  CHECK(senses == 2 && acts == 2 && tile_runs[0] == 8 && tile_runs[1] == 3);
  /* Resumed at task 1 without sensing again: task 0's committed tiles are not redone. */
  CHECK(intm_infer(&app) == INTM_OK);
  CHECK(senses == 2 && acts == 3 && tile_runs[0] == 8 && tile_runs[1] == 6);
  CHECK(output_value == 22);
  printf("ok\n");
  return 0;
}
'''


@pytest.mark.host_cc
def test_device_loop_senses_once_per_inference_and_never_recomputes_a_done_one(tmp_path):
    """intm_infer/intm_next_inference on a model in miniature: a DONE inference is delivered
    again without running a task; intm_next_inference() makes the next call sense; a
    failure in task 1 resumes there, with the same inputs and task 0's tiles kept."""
    (tmp_path / "model.h").write_text(_LOOP_MODEL_H)
    out = _compile_and_run(tmp_path, _LOOP_MAIN, "intm_app.c", "intm_progress.c",
                           "intm_executor.c", includes=(tmp_path,))
    assert out == "ok\n"
