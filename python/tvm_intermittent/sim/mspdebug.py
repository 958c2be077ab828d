"""Run an exported project on an emulated 16-bit MSP430 (mspdebug's simulator), count its
instructions and cycles, and cut its power.

The same model and runtime sources that run on QEMU's Cortex-M4 are built with clang
--target=msp430 and the board support package ``bsp/msp430_sim`` (``make msp430``), and
run on ``mspdebug sim``, driven through its command line:

1. ``prog`` loads the ELF; ``fill`` zeroes NVM and the I/O mailbox (a fresh part's FRAM, as
   QEMU's PSRAM starts as zeros); ``load_raw`` puts the inputs into the mailbox;
2. each boot is ``fill`` of all SRAM with a fixed pattern (the loss of SRAM at power-off;
   done by the host, so it costs no instruction), ``reset`` (the simulator keeps memory, so
   FRAM survives) and then either ``step N`` (a boot that loses power after exactly N
   instructions) or ``run`` (a boot with enough energy);
3. the firmware ends at ``intm_exit_trap``, whose first word is no instruction: the
   simulator stops there in both cases, so the tracer's instruction count is exact;
4. ``save_raw`` reads the mailbox back: exit status, console, outputs.

The tracer counts instructions exactly and cycles by mspdebug's timing table (which
over-counts some constant-generator operands; see docs/msp430.md). Continuous runs stop at
breakpoints on ``intm_mark`` and on the progress record's commit and restore, so they have
the marks, the commit timeline, the instructions before each function's first call
(``range_first``) and in its calls (``call_instructions``, from entry to return, callees
included); ``step`` ignores breakpoints, so runs under failures have per-boot counts but
none of these.

Nothing counts loads or stores here. mspdebug 0.22's simulator hands only the accesses
below 0x200 (its peripherals) to its I/O devices, the tracer among them; a watchpoint
matches one address and halts the run; ``md`` reads memory, not who touched it. The one
exact source is a register dump per instruction, one ``step`` command each, which would
let the host decode every access (indexed, indirect and autoincrement operands need the
register values), and that runs thousands of times slower than ``run``
(``bench/msp430_bench.py`` measures both). So ``traffic`` and ``nvm_bytes_written`` are
None, and the capacitor schedule spends each charge on instructions only: its NVM access
costs are not charged (a warning says so).

The result is a :class:`~tvm_intermittent.sim.qemu.RunResult` (with cycles added), so
:class:`~tvm_intermittent.sim.IntermittentReport` and the campaigns read it unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..codegen.project_files import MSP430_SRAM_BASE
from ..errors import FirmwareStatus, SimulationError, ToolchainError, explain_firmware_status
from . import tensors
from .power import Capacitor, FailAt, Schedule, failure_points
from .qemu import DEFAULT_TIMEOUT_S, PROGRESS_FUNCTIONS, RunResult, _check_power
from .toolchain import MSP430_NM, build_project, msp430_toolchain_available, symbols

logger = logging.getLogger(__name__)

MSPDEBUG = "mspdebug"
MSPDEBUG_INSTALL_HINT = "apt-get install mspdebug"
#: The byte pattern the host writes over SRAM at every boot (as QEMU's scrub: 0xDEADBEEF).
SRAM_SCRUB_BYTES = (0xEF, 0xBE, 0xAD, 0xDE)
NO_PROGRESS_STATUS = int(FirmwareStatus.ERROR_NO_PROGRESS)
#: Symbols of the board support package the runner needs.
_TRAP = "intm_exit_trap"
_MAILBOX = ("intm_io_exit_status", "intm_io_log_length", "intm_io_log", "intm_io_input",
            "intm_io_output", "intm_io_output_length")
_PROMPT = b"(mspdebug) "
_COUNT = re.compile(r"Instruction count:\s*(\d+)\s*\nMCLK:\s*(\d+)")
_HALT = re.compile(r"sim: (.*?) \(PC = 0x([0-9a-fA-F]+)\)")
_PC = re.compile(r"\( PC: ([0-9a-fA-F]+)\)")
_SP = re.compile(r"\( SP: ([0-9a-fA-F]+)\)")
_MD = re.compile(r"^\s*[0-9a-fA-F]+: ([0-9a-fA-F]{2}) ([0-9a-fA-F]{2})", re.MULTILINE)


@dataclasses.dataclass
class Msp430RunResult(RunResult):
    """A :class:`~tvm_intermittent.sim.qemu.RunResult` of the MSP430 simulator, with cycles.

    Attributes
    ----------
    cycles_total : int
        MCLK cycles over all boots, by mspdebug's timing table.
    per_boot_cycles : list of int
        Cycles of each boot; they sum to ``cycles_total``.
    cycles_model : int or None
        Cycles between the two ``intm_mark()`` calls (continuous runs only).
    call_instructions : dict or None
        ``function -> instructions`` from entry to return over all its calls, callees
        included (continuous runs only). Not ``range_instructions``, which on QEMU
        excludes callees and which a failure run here cannot count: the report, which
        subtracts one from the other, keeps reading zeros on both.
    """

    cycles_total: int = 0
    per_boot_cycles: list = dataclasses.field(default_factory=list)
    cycles_model: int | None = None
    call_instructions: dict | None = None


@functools.lru_cache(maxsize=None)
def mspdebug_available() -> tuple[bool, str]:
    """Whether MSP430 runs can happen: mspdebug (its ``sim`` driver) and the MSP430 toolchain.

    Returns
    -------
    available, reason : (bool, str)
        ``reason`` says what is missing and how to install it, for ``pytest.skip``.
    """
    if shutil.which(MSPDEBUG) is None:
        return False, f"`{MSPDEBUG}` not found; install with: {MSPDEBUG_INSTALL_HINT}"
    if shutil.which("stdbuf") is None:
        return False, "`stdbuf` (coreutils) not found; it keeps mspdebug's output unbuffered"
    available, reason = msp430_toolchain_available()
    if not available:
        return False, reason
    return True, "mspdebug and clang --target=msp430 found"


@dataclasses.dataclass(frozen=True)
class _Firmware:
    elf: Path
    table: dict
    mode: str | None
    nvm: tuple  # (start, length) of FRAM state to zero at power-on: NVM and the mailbox
    functions: tuple


def _firmware(project_dir: Path, mode: str | None, functions) -> _Firmware:
    available, reason = mspdebug_available()
    if not available:
        raise ToolchainError(reason)
    elf = build_project(project_dir, "msp430", mode=mode)
    table = symbols(elf, MSP430_NM)
    missing = [name for name in (_TRAP, "intm_nvm_start", *_MAILBOX) if name not in table]
    if missing:
        raise ToolchainError(f"{elf} lacks {', '.join(missing)}: was it built from "
                             "bsp/msp430_sim? Export the project again")
    start = table["intm_nvm_start"][0]
    end = max(table[name][0] + table[name][1] for name in _MAILBOX)
    built_mode = mode if elf.parent.name == f"msp430-{mode}" else None
    counted = tuple(name for name in functions if name in table)
    return _Firmware(elf, table, built_mode, (start, end - start), counted)


class _Session:
    """One ``mspdebug sim`` process, driven command by command through its prompt."""

    def __init__(self, deadline: float, what: str):
        self.deadline, self.what, self.console = deadline, what, []
        # Unbuffered: its prompt (no newline) must reach us before it waits for a command.
        self.proc = subprocess.Popen(["stdbuf", "-o0", "-e0", MSPDEBUG, "-q", "sim"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._read_to_prompt()

    def _read_to_prompt(self) -> str:
        data = b""
        fd = self.proc.stdout.fileno()
        while not data.endswith(_PROMPT):
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise SimulationError(f"{self.what} did not finish in time; last output:\n"
                                      f"{data.decode(errors='replace')[-2000:]}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.close()
                raise SimulationError(f"mspdebug ended unexpectedly in {self.what}:\n"
                                      f"{data.decode(errors='replace')[-2000:]}")
            data += chunk
        return data[: -len(_PROMPT)].decode(errors="replace")

    def __call__(self, command: str) -> str:
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read_to_prompt()

    def counts(self) -> tuple[int, int]:
        """(instructions, cycles) since the tracer was added."""
        match = _COUNT.search(self("simio info tr"))
        if match is None:
            raise SimulationError(f"mspdebug's tracer gave no counts in {self.what}")
        return int(match.group(1)), int(match.group(2))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _power_on(session: _Session, firmware: _Firmware, input_path: Path) -> None:
    """Load the firmware into a fresh part: zeroed NVM and mailbox, then the inputs."""
    out = session(f"prog {firmware.elf}")
    if "Done" not in out:
        raise SimulationError(f"mspdebug could not load {firmware.elf}:\n{out}")
    start, length = firmware.nvm
    session(f"fill {start:#x} {length:#x} 0")
    if input_path.stat().st_size:
        out = session(f"load_raw {input_path} {firmware.table['intm_io_input'][0]:#x}")
        if "Done" not in out:
            raise SimulationError(f"mspdebug could not load the inputs:\n{out}")


def _boot(session: _Session, sram_bytes: int) -> None:
    """Power up: SRAM lost (scrubbed by the host), the CPU reset, FRAM kept."""
    pattern = " ".join(f"{b:#x}" for b in SRAM_SCRUB_BYTES)
    session(f"fill {MSP430_SRAM_BASE:#x} {sram_bytes:#x} {pattern}")
    session("reset")


def _halted_at_exit(out: str, firmware: _Firmware, what: str) -> bool:
    """Whether the simulator stopped at the exit trap; any other stop is a crash."""
    match = _HALT.search(out)
    if match is None:
        return False
    if int(match.group(2), 16) != firmware.table[_TRAP][0]:
        raise SimulationError(f"{what}: the CPU stopped at PC {match.group(2)} "
                              f"({match.group(1)}), not at the exit; mspdebug said:\n{out}")
    return True


def _run_to_return(session: _Session, stop: str, slot: int, entry: int, what: str) -> int:
    """From a stop at a function's first instruction, run to its return; its instructions.

    The return address is the word at SP on entry; a breakpoint there (in a spare slot)
    stops the run when the function has returned, so the count includes its callees.
    """
    sp = _SP.search(stop)
    words = _MD.search(session(f"md {int(sp.group(1), 16):#x} 2")) if sp else None
    if words is None:
        raise SimulationError(f"{what}: cannot read the return address at a breakpoint:\n"
                              f"{stop}")
    back = int(words.group(1), 16) | int(words.group(2), 16) << 8
    session(f"setbreak {back:#x} {slot}")
    out = session("run")
    pc = _PC.search(out)
    if pc is None or int(pc.group(1), 16) != back:
        raise SimulationError(f"{what}: the run did not return to {back:#x}:\n{out}")
    session(f"delbreak {slot}")
    return session.counts()[0] - entry


def _mailbox(session: _Session, firmware: _Firmware, workdir: Path) -> dict:
    """The exit status, console and output bytes the firmware left in FRAM."""
    path = workdir / "mailbox.bin"
    start, length = firmware.nvm
    session(f"save_raw {start:#x} {length:#x} {path}")
    data = path.read_bytes()

    def at(name, size=None):
        address, nbytes = firmware.table[name]
        return data[address - start: address - start + (nbytes if size is None else size)]

    log_length = int.from_bytes(at("intm_io_log_length"), "little")
    output_length = int.from_bytes(at("intm_io_output_length"), "little")
    return {"status": int.from_bytes(at("intm_io_exit_status"), "little"),
            "console": at("intm_io_log", log_length).decode(errors="replace"),
            "output": at("intm_io_output", output_length)}


def _one_run(session: _Session, firmware: _Firmware, meta: dict, workdir: Path,
             power: Schedule, max_boots: int, sram_bytes: int, what: str) -> Msp430RunResult:
    """Power-on to exit (or to the boot limit) under ``power``; the session is reused."""
    _power_on(session, firmware, workdir / "input.bin")
    budgets = power.budgets(max_boots)
    started = time.perf_counter()
    per_boot, per_boot_cycles, marks, commits, first = [], [], [], [], {}
    halted, boots = False, 0
    continuous = not power.injects_failures
    breaks, inside = {}, {}
    if continuous:
        names = ("intm_mark", *firmware.functions)
        for slot, name in enumerate(n for n in names if n in firmware.table):
            session(f"setbreak {firmware.table[name][0]:#x} {slot}")
            breaks[firmware.table[name][0]] = name
    while not halted:
        boots += 1
        _boot(session, sram_bytes)
        # From here: the tracer counts `reset` as one instruction, which no boot executes.
        base_i, base_c = session.counts()
        budget = None
        if power.fail_at is not None and boots == 1:
            budget = power.fail_at
        elif boots - 1 < len(budgets):
            budget = budgets[boots - 1]
        if budget is None:
            while True:
                out = session("run")
                if _halted_at_exit(out, firmware, what):
                    halted = True
                    break
                pc = _PC.search(out)
                name = breaks.get(int(pc.group(1), 16)) if pc else None
                if name is None:
                    raise SimulationError(f"{what}: the simulator stopped without reaching "
                                          f"the exit:\n{out}")
                count, cycles = session.counts()
                if name == "intm_mark":
                    marks.append((count - base_i, cycles - base_c))
                else:
                    first.setdefault(name, count - base_i)
                    if name == PROGRESS_FUNCTIONS[0]:
                        commits.append(count - base_i)
                    inside[name] = inside.get(name, 0) + _run_to_return(
                        session, out, len(breaks), count, what)
        elif budget > 0:
            halted = _halted_at_exit(session(f"step {budget}"), firmware, what)
        count, cycles = session.counts()
        per_boot.append(count - base_i)
        per_boot_cycles.append(cycles - base_c)
        if not halted and boots >= max_boots:
            break
    seconds = time.perf_counter() - started
    if breaks:
        session("delbreak")  # all of them: the next run in this session may step instead
    box = _mailbox(session, firmware, workdir)
    finished, stop_reason, outputs, status = True, None, None, box["status"]
    if not halted:
        finished, stop_reason, status = False, "max_boots", None
    elif status == NO_PROGRESS_STATUS:
        finished, stop_reason = False, "no_progress"
    elif status != 0:
        raise SimulationError(
            f"{what} exited with status {status} ({explain_firmware_status(status)}) after "
            f"{boots} boot(s) and {boots - 1} power failure(s); console:\n{box['console']}",
            firmware_status=status)
    else:
        try:
            outputs = tensors.decode_outputs(meta, box["output"])
        except ValueError as err:
            raise SimulationError(f"{what}: {err}; console:\n{box['console']}") from err
    return Msp430RunResult(
        outputs=outputs,
        instructions_total=sum(per_boot),
        instructions_model=marks[1][0] - marks[0][0] if len(marks) == 2 else None,
        exit_status=status,
        console=box["console"],
        seconds=seconds,
        kind="msp430",
        marks=[m[0] for m in marks],
        commits=commits,
        instructions_scrub=0,
        boots=boots,
        per_boot_instructions=per_boot,
        per_boot_nvm_bytes=[],
        failures=boots - 1 if halted else boots,
        nvm_bytes_written=None,
        range_instructions={},
        range_first={name: first.get(name) for name in firmware.functions} if continuous else {},
        finished=finished,
        stop_reason=stop_reason,
        schedule=power.to_dict(),
        mode=firmware.mode,
        cycles_total=sum(per_boot_cycles),
        per_boot_cycles=per_boot_cycles,
        cycles_model=marks[1][1] - marks[0][1] if len(marks) == 2 else None,
        call_instructions=({name: inside.get(name, 0) for name in firmware.functions}
                           if continuous else None),
    )


def _sram_bytes(project_dir: Path) -> int:
    text = (project_dir / "bsp" / "msp430_sim" / "linker.ld").read_text()
    match = re.search(r"SRAM\s*\(rwx\)\s*:\s*ORIGIN = 0x1C00, LENGTH = (\d+)", text)
    if match is None:
        raise ToolchainError(f"{project_dir}: bsp/msp430_sim/linker.ld has no SRAM region")
    return int(match.group(1))


def _warn_nvm_cost(power: Schedule) -> None:
    if isinstance(power, Capacitor) and (power.nvm_load_cost > 0 or power.nvm_store_cost > 0):
        logger.warning("mspdebug counts no loads or stores (its simulator reports memory "
                       "accesses only below 0x200; docs/msp430.md, \"NVM traffic\"): the "
                       "capacitor schedule's NVM access costs (%.3g instruction-equivalents "
                       "per load, %.3g per store) are not charged on the MSP430 run",
                       power.nvm_load_cost, power.nvm_store_cost)


def _runs(project_dir, inputs, schedules, timeout, max_boots, mode, functions):
    project_dir = Path(project_dir).resolve()
    meta = tensors.load_model_json(project_dir)
    input_bytes = tensors.encode_inputs(meta, inputs)
    firmware = _firmware(project_dir, mode, tuple(functions))
    sram = _sram_bytes(project_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="intm-msp430-") as tmp:
        workdir = Path(tmp)
        (workdir / "input.bin").write_bytes(input_bytes)
        what = f"msp430 run of {project_dir.name}"
        session = _Session(time.monotonic() + timeout * max(1, len(schedules)), what)
        try:
            session("simio add hwmult mpy")
            session("simio add tracer tr")
            for power in schedules:
                label = what + (f" under {power.to_dict()}" if power.injects_failures else "")
                results.append(_one_run(session, firmware, meta, workdir, power, max_boots,
                                        sram, label))
        finally:
            session.close()
    return results


def run(project_dir, inputs, *, timeout: float = DEFAULT_TIMEOUT_S,
        power: Schedule | None = None, max_boots: int | None = None, mode: str | None = None,
        functions=PROGRESS_FUNCTIONS) -> Msp430RunResult:
    """Build the project for the MSP430 if needed and run the model once on ``inputs``.

    The parameters are those of :func:`tvm_intermittent.sim.qemu.run` without the QEMU-only
    ones (``kind``, ``lto``, ``nvm_words``); ``functions`` are the functions whose first
    call a continuous run records in ``range_first``.

    Returns
    -------
    Msp430RunResult

    Raises
    ------
    InputError, ToolchainError, DoesNotFitError, SimulationError
        As :func:`tvm_intermittent.sim.qemu.run`.
    """
    power, max_boots = _check_power(power, "msp430", max_boots)
    _warn_nvm_cost(power)
    return _runs(project_dir, inputs, [power], timeout, max_boots, mode, functions)[0]


def run_exhaustive(project_dir, inputs, window, *, timeout: float = DEFAULT_TIMEOUT_S,
                   max_boots: int | None = None, mode: str | None = None,
                   functions=PROGRESS_FUNCTIONS) -> list[Msp430RunResult]:
    """One run per failure point ``k`` in the window, failing after exactly ``k``
    instructions, in one simulator process (each run starts from power-on); see
    :func:`tvm_intermittent.sim.qemu.run_exhaustive`. ``timeout`` is per run."""
    _, max_boots = _check_power(None, "msp430", max_boots)
    return _runs(project_dir, inputs, [FailAt(k) for k in failure_points(window)], timeout,
                 max_boots, mode, functions)


__all__ = ["Msp430RunResult", "mspdebug_available", "run", "run_exhaustive"]
