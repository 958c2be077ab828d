"""The C runtime on QEMU: the DONE phase, other firmware's NVM, -flto, the device loop.

One small ONNX model (Gemm, two tasks) compiled for a 3 uF capacitor on the msp430fr5994
profile. Each failure test checks that the failures happened where it meant them to (one
failure per run, the first boot ending at the point injected) and that the outputs equal
the uninterrupted run's, bit for bit.
"""

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import tvm_intermittent as ti
from tvm_intermittent import sim
from tvm_intermittent.sim.qemu import QEMU, QEMU_MACHINE

import onnx_models

pytestmark = pytest.mark.qemu

TINY_CAPACITOR = 3e-6
#: The runtime's phases the tests count instructions of (the plugin counts at most 8).
PHASES = ("intm_progress_commit", "intm_progress_restore", "intm_read_inputs",
          "intm_write_outputs", "intm_task_0", "intm_task_1")
COMMIT = "intm_progress_commit"


@pytest.fixture(scope="module")
def gemm(tmp_path_factory):
    model, inputs = onnx_models.CASES["gemm"]()
    artifact = ti.build(model, "intermittent/msp430fr5994", capacitor_f=TINY_CAPACITOR)
    project = artifact.export(tmp_path_factory.mktemp("gemm") / "p")
    tasks = len(artifact.manifest()["tasks"])
    assert tasks == 2  # PHASES names both
    continuous = sim.run(project, inputs, functions=PHASES)
    return project, inputs, continuous


def _same(outputs, reference) -> bool:
    return outputs is not None and all(np.array_equal(a, b) for a, b in zip(outputs, reference))


def _commit_length(run) -> int:
    """Instructions of one call of the commit function (every call runs the same path)."""
    assert run.range_instructions[COMMIT] % len(run.commits) == 0
    return run.range_instructions[COMMIT] // len(run.commits)


def test_no_failure_after_the_final_commit_starts_a_second_inference(gemm):
    """A failure at every instruction from the final commit's first one to the exit: the
    outputs are always the uninterrupted ones, the inputs are never taken again and the
    first task never runs again. Before the DONE record lands the last batch runs once
    more; from then on nothing runs but a boot and the output write."""
    project, inputs, continuous = gemm
    first, stop = continuous.commits[-1], continuous.instructions_total
    assert first < continuous.range_first["intm_write_outputs"] < stop  # the window holds it
    runs = sim.run_exhaustive(project, inputs, (first, stop), functions=PHASES)
    assert len(runs) == stop - first > 100

    once = continuous.range_instructions
    done_at, done_boots = None, set()
    for k, run in zip(range(first, stop), runs):
        assert run.finished and run.failures == 1 and run.boots == 2, k
        assert run.per_boot_instructions[0] == k  # the failure fell where it was injected
        assert _same(run.outputs, continuous.outputs), k
        assert run.range_instructions["intm_read_inputs"] == once["intm_read_inputs"], k
        assert run.range_instructions["intm_task_0"] == once["intm_task_0"], k
        reran_last = run.range_instructions["intm_task_1"] > once["intm_task_1"]
        if done_at is None and not reran_last:
            done_at = k
        if done_at is not None:
            # DONE: no task runs again and nothing is committed; the boot restores, writes
            # the outputs and exits, the same instructions whatever k was.
            assert not reran_last, k
            assert len(run.commits) == len(continuous.commits), k
            done_boots.add(run.per_boot_instructions[1])
    # The DONE record lands inside the final commit, at its check word's store.
    assert done_at is not None and first < done_at < first + _commit_length(continuous)
    model = continuous.marks[1] - continuous.marks[0]
    assert len(done_boots) == 1 and done_boots.pop() < model


def _sealed(layout, model_hash, sequence, phase, task, tile):
    """A progress record as intm_progress.c lays it out and checks it (layout 2)."""
    words = [layout, model_hash, sequence, phase, task, tile]
    h = 2166136261
    for word in words:
        h = ((h ^ word) * 16777619) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    return words + [h | 1]


def _record_constants(project: Path):
    header = (project / "runtime" / "intm_progress.h").read_text()
    magic = int(re.search(r"#define INTM_RECORD_MAGIC (0x[0-9A-Fa-f]+)u", header).group(1), 16)
    layout = int(re.search(r"#define INTM_RECORD_LAYOUT (\d+)u", header).group(1))
    model_c = (project / "model" / "model.c").read_text()
    model_hash = int(re.search(r"intm_model_hash = (0x[0-9a-f]+)u", model_c).group(1), 16)
    return magic, layout, model_hash


DONE = 2


@pytest.mark.parametrize("case", ["other model", "other layout", "own torn commit"])
def test_nvm_left_by_other_firmware_is_reported_and_not_resumed(gemm, case):
    """NVM starts with a DONE record in slot 0. Resumed, it would deliver the (zeroed)
    arena as outputs; the firmware must report other firmware's record, start over and
    give the right outputs. Its own torn commit is no news and is not reported."""
    project, inputs, continuous = gemm
    magic, layout, model_hash = _record_constants(project)
    elf = sim.build_project(project)
    records = sim.symbols(elf)["intm_records"][0]
    if case == "other model":
        words, reported = _sealed(magic | layout, 0x0BADF00D, 7, DONE, 2, 0), (0x0BADF00D, layout)
    elif case == "other layout":
        words, reported = _sealed(magic | 3, model_hash, 7, DONE, 2, 0), (model_hash, 3)
    else:
        words, reported = _sealed(magic | layout, model_hash, 7, DONE, 2, 0)[:-1] + [0], None
    nvm = {records + 4 * i: w for i, w in enumerate(words)}
    run = sim.run(project, inputs, nvm_words=nvm, functions=PHASES)
    assert run.finished and _same(run.outputs, continuous.outputs)
    # The whole inference ran: inputs read, every task once and every commit, as on blank
    # NVM (only restore, which reads and reports the record, differs).
    for name in set(PHASES) - {"intm_progress_restore"}:
        assert run.range_instructions[name] == continuous.range_instructions[name], name
    line = "intm: NVM holds progress of other firmware"
    if reported is None:
        assert run.foreign_nvm == [] and line not in run.console
    else:
        assert run.foreign_nvm == [reported]
        assert (f"{line} (hash {reported[0]:#010x}, layout {reported[1]}); starting a new "
                "inference") in run.console


def test_nvm_words_refuse_power_failures(gemm):
    project, inputs, _ = gemm
    with pytest.raises(ti.errors.InputError, match="continuous power"):
        sim.run(project, inputs, nvm_words={0x21000000: 1}, power=sim.power.FailAt(500))


def test_lto_build_keeps_its_barriers_and_survives_a_failure_at_every_commit_instruction(gemm):
    """With -flto, GCC sees the kernels and the commit at once. The commit keeps its three
    DMBs, and a failure at each instruction of the first task's commit gives the
    uninterrupted outputs: before the check word the batch runs again, after it never."""
    project, inputs, continuous = gemm
    elf = sim.build_project(project, lto=True)
    assert elf.parent.name == "qemu-lto"
    objdump = subprocess.run(["arm-none-eabi-objdump", "-d", f"--disassemble={COMMIT}",
                              str(elf)], capture_output=True, text=True, check=True).stdout
    assert len(re.findall(r"\bdmb\b", objdump)) == 3
    lto = sim.run(project, inputs, lto=True, functions=PHASES)
    assert _same(lto.outputs, continuous.outputs) and len(lto.commits) == 3
    assert lto.instructions_total != continuous.instructions_total  # another program indeed
    first = lto.commits[1]  # after task 0's only batch
    length = _commit_length(lto)
    runs = sim.run_exhaustive(project, inputs, (first, first + length), lto=True,
                              functions=PHASES)
    assert len(runs) == length
    reran = []
    for k, run in zip(range(first, first + length), runs):
        assert run.finished and run.failures == 1 and run.per_boot_instructions[0] == k, k
        assert _same(run.outputs, continuous.outputs), k
        reran.append(run.range_instructions["intm_task_0"] > lto.range_instructions["intm_task_0"])
    # One switch from "redo the batch" to "resume after it", inside the commit.
    switch = reran.index(False)
    assert 0 < switch and all(reran[:switch]) and not any(reran[switch:])


def _run_example(elf: Path, input_bytes: bytes):
    """Run the example firmware on QEMU with ``input.bin``; return status, console, output."""
    with tempfile.TemporaryDirectory(prefix="intm-example-") as tmp:
        (Path(tmp) / "input.bin").write_bytes(input_bytes)
        proc = subprocess.run(
            [QEMU, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "none",
             "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
             "-kernel", str(elf)], cwd=tmp, capture_output=True, text=True, timeout=60,
            check=False)
        output = Path(tmp) / "output.bin"
        return proc.returncode, proc.stdout + proc.stderr, output.read_bytes()


def test_example_application_loop_runs_one_inference_per_sample(gemm):
    """runtime/examples/intm_app_example.c: three samples in, three results out, each the
    harness's result for that sample: intm_next_inference() makes every intm_infer() after
    the first take a new sample instead of delivering the last result again."""
    project, inputs, _ = gemm
    meta = sim.load_model_json(project)
    rng = np.random.default_rng(11)
    samples = [inputs] + [[rng.standard_normal(x.shape).astype(x.dtype) for x in inputs]
                          for _ in range(2)]
    expected = [sim.run(project, sample).outputs for sample in samples]
    assert not _same(expected[1], expected[0])
    elf = sim.build_project(project, "example")
    status, console, output = _run_example(
        elf, b"".join(sim.encode_inputs(meta, sample) for sample in samples))
    assert status == 0, console
    assert "intm example: no more samples" in console
    size = len(output) // len(samples)
    assert size * len(samples) == len(output)
    for i, want in enumerate(expected):
        got = sim.decode_outputs(meta, output[i * size:(i + 1) * size])
        assert _same(got, want), i
