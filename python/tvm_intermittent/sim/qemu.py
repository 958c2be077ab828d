"""Run an exported project on QEMU mps2-an386 (or natively), count its instructions, and
cut its power.

One :func:`run` is one emulation of the board, fed from a fresh temporary directory:

1. check the inputs against ``model.json`` and write them to ``input.bin``;
2. build the project (incremental ``make``; ``mode`` picks the firmware variant);
3. start ``qemu-system-arm`` with semihosting, ``-icount shift=0`` (timers count
   instructions, so runs are deterministic) and the ``intm_icount`` plugin, which counts
   executed instructions, records the count at each call of ``intm_mark()``, at each entry
   of the phase functions and of every tile batch (``events``) and at each NVM store of the
   commit and restore functions (``stores``), counts the loads and stores into NVM and
   SRAM (accesses and bytes) where they happen and the instructions of the commit and
   restore functions, and injects the power failures of a schedule
   (:mod:`~tvm_intermittent.sim.power`) as system resets at exact instruction counts, NVM
   accesses charged against each boot's budget as the schedule says;
4. read ``output.bin`` and the plugin's report.

Memory traffic is attributed to the phases of :data:`PHASES` (``RunResult.traffic_by_phase``)
and to the tasks of the task table (``RunResult.traffic_by_task``): the plugin counts, for
the commit and restore functions, what their own instructions do, and for every other
instruction what it does in the *segment* of the last recorded function entered (a phase
function or a task function), or of the boot before any. A segment's owner is the function
entered last, so the executor's loop after a commit is the commit segment's (the kernel
phase), and a restore's callees are the restore's.

A power failure resets the machine: QEMU reloads the firmware's load segments and keeps
the rest of RAM, the reset handler scrubs SRAM, and the firmware boots again and resumes
from its progress record in NVM. The boot-time SRAM scrub (``intm_scrub_sram``, which
stands for the loss of SRAM contents at power-off, not for firmware work) is counted apart
in ``instructions_scrub`` and is not charged against a boot's budget.

The plugin stops the emulation when boots exceed ``max_boots``, so a firmware that never
gets far enough to commit cannot run forever; the firmware itself gives up with status 4
when boots keep failing before a commit. Both end the run with ``finished=False`` rather
than an error: under a harsh schedule that is a result, not a crash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from ..cache import cache_root, exclusive
from ..codegen.project_files import QEMU_SRAM_LIMIT
from ..energy.model import Work
from ..errors import (
    FirmwareStatus,
    InputError,
    SimulationError,
    ToolchainError,
    explain_firmware_status,
)
from . import tensors
from .isa import default_kind
from .power import Exhaustive, FailAt, FailAtEach, NoFailures, Schedule, failure_points
from .toolchain import (
    HOST_INSTALL_HINT,
    NVM_BASE,
    NVM_WINDOW_BYTES,
    SRAM_BASE,
    build_project,
    host_compiler_available,
    symbols,
)

QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"
QEMU_INSTALL_HINT = "apt-get install qemu-system-arm"
DEFAULT_TIMEOUT_S = 120.0
#: Boots a QEMU run may take when the caller sets no limit.
DEFAULT_MAX_BOOTS = 10_000
#: The firmware's exit status for "no progress: boots keep failing before the next commit".
NO_PROGRESS_STATUS = int(FirmwareStatus.ERROR_NO_PROGRESS)
#: Functions whose instructions a run counts, when the firmware has them: the runtime's
#: commit and restore of the progress record.
PROGRESS_FUNCTIONS = ("intm_progress_commit", "intm_progress_restore")
#: Address ranges the plugin can count at once (INTM_MAX_RANGES in the plugin): those a
#: caller asks for, besides PROGRESS_FUNCTIONS, which every run counts (their traffic is
#: the commit and restore phases').
MAX_FUNCTIONS = 14
_PLUGIN_RANGES = 16
#: The phases of an inference that ``RunResult.traffic_by_phase`` splits a run into:
#:   boot     the reset handler up to the restore function (startup, .data/.bss, platform);
#:   restore  the progress record's restore, its callees, and what runs from its return
#:            to the next phase (a few instructions of the device loop);
#:   input    ``intm_read_inputs``;
#:   kernel   everything else: the tiles and the executor;
#:   commit   the commit function;
#:   output   ``intm_write_outputs``.
PHASES = ("boot", "restore", "input", "kernel", "commit", "output")
#: The phase of each event function's segment; task functions and any other are "kernel".
_SEGMENT_PHASES = {"intm_progress_restore": "restore", "intm_read_inputs": "input",
                   "intm_write_outputs": "output"}
#: The phase of each always-counted range (the instructions of the function itself).
_RANGE_PHASES = {"intm_progress_commit": "commit", "intm_progress_restore": "restore"}
#: The SRAM window the plugin counts: QEMU mps2-an386's SSRAM at 0x20000000.
SRAM_WINDOW_BYTES = QEMU_SRAM_LIMIT
#: The counts of SRAM traffic in the plugin's report (``RunResult.sram_traffic``).
SRAM_COUNTS = ("sram_loads", "sram_stores", "sram_load_bytes", "sram_store_bytes")
#: Functions whose every entry a run records by default (those the firmware has): the
#: phases of an inference. Every ``intm_task_<N>`` (one call per tile batch) comes on top.
PHASE_FUNCTIONS = ("intm_progress_restore", "intm_read_inputs", "intm_progress_commit",
                   "intm_write_outputs")
#: Functions whose NVM stores a run records by default: where a commit's first and last
#: store fall, to the instruction.
STORE_FUNCTIONS = PROGRESS_FUNCTIONS
#: The task functions the executor calls once per tile batch (``task->run``).
TASK_FUNCTION = re.compile(r"^intm_task_(\d+)$")
#: Event functions and store ranges the plugin takes (INTM_MAX_EVENTS and
#: INTM_MAX_STORE_RANGES in the plugin).
MAX_EVENTS = 4096
MAX_STORE_FUNCTIONS = 8

#: What the firmware prints when NVM holds another firmware's progress (intm_progress.c).
_FOREIGN_NVM = re.compile(r"intm: NVM holds progress of other firmware "
                          r"\(hash (0x[0-9a-f]{8}), layout (\d+)\)")
_PLUGIN_SOURCE = "intm_icount.c"
_PLUGIN_FLAGS = ["-shared", "-fPIC", "-O2", "-fvisibility=hidden"]


@dataclasses.dataclass
class RunResult:
    """What one run of the firmware produced.

    Attributes
    ----------
    outputs : list of numpy.ndarray or None
        The model's outputs, with the dtypes and shapes of ``model.json``; None when the
        run did not finish.
    instructions_total : int or None
        Instructions executed over all boots, without the SRAM scrub (None on host).
    instructions_model : int or None
        Instructions between the two ``intm_mark()`` calls around the model (None on host,
        or when the firmware did not mark exactly twice, as under power failures).
    exit_status : int or None
        The firmware's exit status: 0, or NO_PROGRESS_STATUS when ``finished`` is False
        (other statuses raise); None when ``max_boots`` stopped the emulation first.
    console : str
        Everything the firmware (and QEMU) printed.
    seconds : float
        Wall time of the emulator or host program, without the build.
    kind : str
        ``"qemu"`` or ``"host"``.
    marks : list of int
        The raw instruction count at each ``intm_mark()`` call.
    instructions_scrub : int or None
        Instructions spent scrubbing SRAM, over all boots (None on host).
    boots : int
        Boots of the firmware, the first included (1 on host).
    per_boot_instructions : list of int
        Instructions of each boot, without the scrub; they sum to ``instructions_total``.
    per_boot_nvm_bytes : list of int
        Bytes stored into NVM in each boot.
    per_boot_nvm_loads, per_boot_nvm_stores, per_boot_nvm_load_bytes : list of int
        NVM load and store accesses (bus transfers) and bytes loaded in each boot.
    failures : int
        Power failures injected.
    nvm_bytes_written : int or None
        Bytes stored into the NVM window (0x21000000, 16 MiB) by the CPU over the run
        (None on host). Exact: the sum of the sizes of the stores; equal to
        ``traffic.nvm_store_bytes``.
    traffic : Work or None
        The whole run (all boots, the SRAM scrub left out): ``instructions`` is
        ``instructions_total``, and the NVM loads and stores (one access per bus transfer:
        an LDM or STM of k registers is k, an 8-byte access 2) with their bytes. None on
        host and on the MSP430 simulator, which count no accesses.
    traffic_by_phase : dict of str to Work
        The same split by phase, keys :data:`PHASES` in order; the phases add up to
        ``traffic``.
    traffic_by_task : dict of int to Work
        Task index -> the work of its tile batches (``intm_task_<N>`` and its callees, up to
        the next commit), commits excluded; only tasks that ran. Under power failures a
        batch that ran again counts again.
    sram_traffic : dict
        SRAM (0x20000000, 4 MiB) loads, stores and their bytes over the run, keys
        :data:`SRAM_COUNTS` (the stack included, the scrub not); empty on host.
    sram_by_task : dict of int to dict
        The same per task, as ``traffic_by_task``.
    range_traffic : dict of str to Work
        ``function -> `` what its own instructions did, for the commit and restore
        functions (the phases they stand for); zeros for the other counted functions, whose
        work stays in the segment it runs in.
    range_instructions : dict
        ``function -> instructions`` executed inside its body (callees not included), for
        each of the requested functions the firmware has (by default the progress
        record's commit and restore).
    range_first : dict
        ``function -> instructions_total`` before its first instruction first ran (None if
        it never did): in a continuous run, the startup work before a call.
    finished : bool
        Whether the firmware ran to its exit and wrote its outputs.
    stop_reason : str or None
        Why an unfinished run stopped: ``"max_boots"`` or ``"no_progress"``.
    schedule : dict or None
        The power schedule (:meth:`~tvm_intermittent.sim.power.Schedule.to_dict`).
    mode : str or None
        The firmware variant that ran (None: the Makefile's default, also when the project
        predates modes).
    events : list of (str, int)
        ``(function, count)`` at every entry of each recorded function (by default
        PHASE_FUNCTIONS and the task functions, one entry per tile batch), where ``count``
        is ``instructions_total`` before its first instruction ran; in order.
    stores : list of (str, int)
        ``(function, count)`` for every NVM store made by a watched function (by default
        STORE_FUNCTIONS), ``count`` being ``instructions_total`` before the storing
        instruction: a failure at ``count`` leaves the store undone, at ``count + 1`` done.
    failure_points : list of int
        ``instructions_total`` at each injected power failure.
    foreign_nvm : list of (int, int)
        ``(model hash, record layout)`` of each progress record of other firmware that the
        firmware found in NVM and reported, at any boot, before starting a new inference.
    """

    def event_counts(self, function: str) -> list[int]:
        """The counts at every entry of ``function``, in order."""
        return [count for name, count in self.events if name == function]

    def store_spans(self, function: str = PROGRESS_FUNCTIONS[0]) -> list[tuple]:
        """Per entry of ``function``: ``(entry, first_store, last_store)``, the counts of
        its entry and of its first and last NVM store before its next entry (None for
        both when it stored nothing into NVM)."""
        entries = self.event_counts(function)
        stores = [count for name, count in self.stores if name == function]
        spans, j = [], 0
        for i, entry in enumerate(entries):
            stop = entries[i + 1] if i + 1 < len(entries) else float("inf")
            while j < len(stores) and stores[j] < entry:
                j += 1
            mine = []
            while j < len(stores) and stores[j] < stop:
                mine.append(stores[j])
                j += 1
            spans.append((entry, mine[0], mine[-1]) if mine else (entry, None, None))
        return spans

    outputs: list | None
    instructions_total: int | None
    instructions_model: int | None
    exit_status: int | None
    console: str
    seconds: float
    kind: str = "qemu"
    marks: list = dataclasses.field(default_factory=list)
    #: Instruction count at each entry of the commit function (the progress timeline).
    commits: list = dataclasses.field(default_factory=list)
    #: ``(function, count)`` at each entry of a recorded function, in execution order.
    events: list = dataclasses.field(default_factory=list)
    #: ``(function, count)`` for each NVM store by a watched function, in order.
    stores: list = dataclasses.field(default_factory=list)
    #: ``instructions_total`` when each power failure struck (instructions 1..p ran).
    failure_points: list = dataclasses.field(default_factory=list)
    instructions_scrub: int | None = None
    boots: int = 1
    per_boot_instructions: list = dataclasses.field(default_factory=list)
    per_boot_nvm_bytes: list = dataclasses.field(default_factory=list)
    per_boot_nvm_loads: list = dataclasses.field(default_factory=list)
    per_boot_nvm_stores: list = dataclasses.field(default_factory=list)
    per_boot_nvm_load_bytes: list = dataclasses.field(default_factory=list)
    failures: int = 0
    nvm_bytes_written: int | None = None
    traffic: Work | None = None
    traffic_by_phase: dict = dataclasses.field(default_factory=dict)
    traffic_by_task: dict = dataclasses.field(default_factory=dict)
    sram_traffic: dict = dataclasses.field(default_factory=dict)
    sram_by_task: dict = dataclasses.field(default_factory=dict)
    range_traffic: dict = dataclasses.field(default_factory=dict)
    range_instructions: dict = dataclasses.field(default_factory=dict)
    range_first: dict = dataclasses.field(default_factory=dict)
    finished: bool = True
    stop_reason: str | None = None
    schedule: dict | None = None
    mode: str | None = None
    foreign_nvm: list = dataclasses.field(default_factory=list)


@functools.lru_cache(maxsize=None)
def qemu_available() -> tuple[bool, str]:
    """Whether runs on QEMU can happen: qemu-system-arm with mps2-an386 and plugins, and a
    host ``cc`` for the plugin.

    Returns
    -------
    available, reason : (bool, str)
        ``reason`` says what is missing and how to install it, for ``pytest.skip``.
    """
    if shutil.which(QEMU) is None:
        return False, f"`{QEMU}` not found; install with: {QEMU_INSTALL_HINT}"
    version = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"version (\d+)\.(\d+)", version.stdout)
    if match is None:
        return False, f"cannot tell the version of {QEMU}: {version.stdout.strip()!r}"
    # The plugin uses plugin API version 1 (QEMU 7.x/8.x); QEMU 9 replaced its inline ops.
    if not 7 <= int(match.group(1)) <= 8:
        return False, f"{QEMU} {match.group(0)} found; the instruction counter needs QEMU 7 or 8"
    machines = subprocess.run([QEMU, "-M", "help"], capture_output=True, text=True, check=False)
    if QEMU_MACHINE not in machines.stdout:
        return False, f"{QEMU} has no {QEMU_MACHINE} machine"
    available, reason = host_compiler_available()
    if not available:
        return False, f"the instruction-counting plugin needs a host compiler: {reason}"
    return True, f"{QEMU} {match.group(1)}.{match.group(2)} found"


def plugin_path() -> Path:
    """The compiled instruction-counting plugin, built on first use and cached.

    The shared object lives in the cache (:func:`~tvm_intermittent.cache.cache_root`,
    ``~/.cache/tvm-intermittent`` by default) as ``plugin-<hash>.so``, named by a hash of its
    source and flags, so an edited plugin is rebuilt. Processes that start together (test
    workers, measurement servers) compile it once: the build runs under a lock, and the
    others, once they hold it, find the file made. It is compiled to a temporary file and
    renamed into place, so no process ever loads a half-written plugin.

    Raises
    ------
    ToolchainError
        When there is no host ``cc`` or the plugin does not compile.
    """
    source = resources.files(__package__).joinpath("plugin", _PLUGIN_SOURCE).read_bytes()
    digest = hashlib.sha256(source + " ".join(_PLUGIN_FLAGS).encode()).hexdigest()[:16]
    cache = cache_root()
    target = cache / f"plugin-{digest}.so"
    if target.is_file():
        return target
    cc = shutil.which("cc")
    if cc is None:
        raise ToolchainError(f"`cc` not found (needed for the QEMU plugin); install with: "
                             f"{HOST_INSTALL_HINT}")
    with exclusive(cache / f".plugin-{digest}.lock"):
        if target.is_file():  # made by another process while this one waited
            return target
        with tempfile.TemporaryDirectory(dir=cache, prefix="plugin-build-") as tmp:
            src = Path(tmp) / _PLUGIN_SOURCE
            src.write_bytes(source)
            out = Path(tmp) / "plugin.so"
            result = subprocess.run([cc, *_PLUGIN_FLAGS, "-o", str(out), str(src)],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ToolchainError(
                    f"compiling the QEMU plugin failed:\n{result.stderr.strip()}")
            os.replace(out, target)
    return target


@dataclasses.dataclass(frozen=True)
class _Firmware:
    """A built firmware and the plugin arguments that depend only on it."""

    elf: Path
    plugin_args: tuple
    functions: tuple  # names of the counted ranges, in the order of their range= arguments
    mode: str | None
    events: tuple = ()  # names of the recorded functions, in the order of their event= args
    stores: tuple = ()  # names of the watched functions, in the order of their stores= args
    #: Extra QEMU arguments (the NVM words a run starts with, see :func:`run`).
    qemu_args: tuple = ()


def _qemu_option(value) -> str:
    """Escape a value inside a QEMU ``a=b,c=d`` option, where a comma is written twice."""
    return str(value).replace(",", ",,")


def _event_functions(table: dict, events) -> list[str]:
    """The functions to record: ``events`` (None: PHASE_FUNCTIONS and every task function)
    that the firmware has, one per address (the first name of an address wins)."""
    if events is None:
        tasks = sorted((int(m.group(1)), name) for name in table
                       if (m := TASK_FUNCTION.match(name)))
        events = [*PHASE_FUNCTIONS, *(name for _, name in tasks)]
    chosen, addresses = [], set()
    for name in events:
        if name in table and table[name][0] not in addresses:
            addresses.add(table[name][0])
            chosen.append(name)
    if len(chosen) > MAX_EVENTS:
        raise ValueError(f"the plugin records at most {MAX_EVENTS} functions, got "
                         f"{len(chosen)}")
    return chosen


def _firmware(project_dir: Path, mode: str | None, functions, lto: bool = False, events=None,
              stores=STORE_FUNCTIONS) -> _Firmware:
    elf = build_project(project_dir, "qemu", mode=mode, lto=lto)
    table = symbols(elf)
    args = [f"nvm={NVM_BASE:#x}:{NVM_BASE + NVM_WINDOW_BYTES:#x}",
            f"sram={SRAM_BASE:#x}:{SRAM_BASE + SRAM_WINDOW_BYTES:#x}"]
    if "intm_mark" in table:
        args.append(f"mark={table['intm_mark'][0]:#x}")
    recorded = _event_functions(table, events)
    args += [f"event={table[name][0]:#x}" for name in recorded]
    watched = [name for name in stores if table.get(name, (0, 0))[1] > 0]
    if len(watched) > MAX_STORE_FUNCTIONS:
        raise ValueError(f"the plugin watches the stores of at most {MAX_STORE_FUNCTIONS} "
                         f"functions, got {watched}")
    for name in watched:
        start, size = table[name]
        args.append(f"stores={start:#x}:{start + size:#x}")
    if "intm_scrub_sram" in table:
        start, size = table["intm_scrub_sram"]
        args.append(f"skip={start:#x}:{start + size:#x}")
    if "intm_reset_handler" in table:
        args.append(f"boot={table['intm_reset_handler'][0]:#x}")
    counted = list(dict.fromkeys(name for name in functions
                                 if table.get(name, (0, 0))[1] > 0))
    if len(counted) > MAX_FUNCTIONS:
        raise ValueError(f"the plugin counts at most {MAX_FUNCTIONS} functions, got {counted}")
    # The commit and restore are counted in every run: their traffic is their phases'.
    counted += [name for name in PROGRESS_FUNCTIONS
                if name not in counted and table.get(name, (0, 0))[1] > 0]
    assert len(counted) <= _PLUGIN_RANGES
    for name in counted:
        start, size = table[name]
        key = "own" if name in _RANGE_PHASES else "range"
        args.append(f"{key}={start:#x}:{start + size:#x}")
    # None: the Makefile's default
    built_mode = mode if elf.parent.name.removesuffix("-lto") == f"qemu-{mode}" else None
    return _Firmware(elf, tuple(args), tuple(counted), built_mode, tuple(recorded),
                     tuple(watched))


def _power_args(power: Schedule, max_boots: int, workdir: Path) -> list[str]:
    args = [f"max_boots={max_boots}"]
    budgets = power.budgets(max_boots)
    if budgets:
        path = workdir / "budgets.txt"
        path.write_text("".join(f"{b}\n" for b in budgets))
        args.append(f"budgets={_qemu_option(path)}")
    if power.fail_points:
        args.append("fail_at=" + _qemu_option(",".join(str(k) for k in power.fail_points)))
    if power.nvm_load_cost > 0:
        args.append(f"nvm_load_cost={float(power.nvm_load_cost)!r}")
    if power.nvm_store_cost > 0:
        args.append(f"nvm_store_cost={float(power.nvm_store_cost)!r}")
    return args


def _qemu_command(firmware: _Firmware, counts: Path, power_args) -> list[str]:
    plugin = [_qemu_option(plugin_path()), f"out={_qemu_option(counts)}",
              *firmware.plugin_args, *power_args]
    return [
        QEMU, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native",
        "-icount", "shift=0",
        "-plugin", ",".join(plugin),
        *firmware.qemu_args,
        "-kernel", str(firmware.elf),
    ]


@functools.lru_cache(maxsize=None)
def _raise_open_file_limit() -> None:
    """Let QEMU (a child process) open as many files as this system allows.

    QEMU keeps its semihosting file handles across resets, so each boot that opens
    ``input.bin`` leaks a host handle; a run of thousands of boots would exhaust a soft
    limit of 1024 and the firmware would report an I/O error that real hardware never has.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # some systems refuse an unlimited soft limit; keep the old one


def _check_power(power, kind: str, max_boots) -> tuple[Schedule, int | None]:
    power = NoFailures() if power is None else power
    if isinstance(power, Exhaustive):
        raise InputError("an exhaustive schedule is one run per failure point; use "
                         "sim.run_exhaustive(project, inputs, window)")
    if not isinstance(power, Schedule):
        raise TypeError(f"power must be a sim.power schedule, got {type(power).__name__}")
    if kind == "host" and power.injects_failures:
        raise InputError("power failures need the QEMU run (kind='qemu'), not the host build")
    if max_boots is None:
        max_boots = DEFAULT_MAX_BOOTS
    elif isinstance(max_boots, bool) or int(max_boots) != max_boots or max_boots < 1:
        raise InputError(f"max_boots must be a whole number >= 1, got {max_boots!r}")
    return power, int(max_boots)


def run(project_dir, inputs, *, timeout: float = DEFAULT_TIMEOUT_S, kind: str | None = None,
        power: Schedule | None = None, max_boots: int | None = None, mode: str | None = None,
        functions=PROGRESS_FUNCTIONS, lto: bool = False, nvm_words=None, events=None,
        stores=STORE_FUNCTIONS) -> RunResult:
    """Build the project if needed and run the model once on ``inputs``.

    Parameters
    ----------
    project_dir : str or Path
        An exported project (``model.json``, ``Makefile``, sources).
    inputs : list of numpy.ndarray
        One array per model input, in order, with exactly the shape and dtype of
        ``model.json``.
    timeout : float
        Seconds before the run is killed and reported as hung.
    kind : {"qemu", "host", "msp430"}, optional
        Run the firmware on QEMU (with instruction counts), the host build (outputs only)
        or the MSP430 simulator (:func:`tvm_intermittent.sim.mspdebug.run`, which takes no
        ``lto`` or ``nvm_words``); None: the simulator of the board's ISA (sim/isa.py).
    power : Schedule, optional
        When the power fails (:mod:`tvm_intermittent.sim.power`); None is continuous power.
    max_boots : int, optional
        Stop the emulation when the firmware would boot for the ``max_boots + 1``-th time
        (default DEFAULT_MAX_BOOTS): the run then has ``finished=False`` and
        ``stop_reason="max_boots"``.
    mode : {"tiles", "layer", "restart"}, optional
        Firmware variant to build and run (see
        :func:`~tvm_intermittent.sim.toolchain.build_project`).
    functions : sequence of str
        Functions whose instructions to count into ``range_instructions`` (at most
        MAX_FUNCTIONS; names the firmware lacks are left out).
    lto : bool
        Run the firmware built with link-time optimisation (``make qemu LTO=1``).
    nvm_words : dict, optional
        ``address -> 32-bit word`` that NVM holds at power-on instead of zeros, e.g. the
        progress record another firmware left behind. QEMU writes them again at every
        reset, so they go with continuous power only.
    events : sequence of str, optional
        Functions whose every entry to record into ``events`` (default: PHASE_FUNCTIONS
        and every ``intm_task_<N>``; names the firmware lacks are left out).
    stores : sequence of str
        Functions whose NVM stores to record into ``stores`` (at most
        MAX_STORE_FUNCTIONS).

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        The inputs do not match ``model.json`` (count, shape or dtype), or the schedule
        cannot run this way (failures on the host build, an exhaustive schedule, NVM words
        with power failures).
    ToolchainError, DoesNotFitError
        From :func:`~tvm_intermittent.sim.toolchain.build_project`.
    SimulationError
        The program crashed, exited with a status other than 0 and NO_PROGRESS_STATUS,
        timed out, or wrote the wrong number of output bytes; the message includes its
        console output.

    Examples
    --------
    .. code-block:: python

        result = sim.run("out/kws", [x])
        print(result.outputs[0], result.instructions_model)

        board = load_board("msp430fr5994")
        result = sim.run("out/kws", [x], power=sim.power.Capacitor(board), max_boots=500)
        print(result.finished, result.boots, result.failures)
    """
    project_dir = Path(project_dir).resolve()
    kind = default_kind(project_dir) if kind is None else kind
    if kind == "msp430":
        if lto or nvm_words:
            raise InputError("lto and nvm_words are QEMU options; the MSP430 run takes neither")
        from . import mspdebug  # pylint: disable=import-outside-toplevel

        return mspdebug.run(project_dir, inputs, timeout=timeout, power=power,
                            max_boots=max_boots, mode=mode, functions=functions)
    meta = tensors.load_model_json(project_dir)
    input_bytes = tensors.encode_inputs(meta, inputs)
    power, max_boots = _check_power(power, kind, max_boots)
    if kind == "host":
        return _run_host(project_dir, meta, input_bytes, timeout)
    firmware = _firmware(project_dir, mode, tuple(functions), lto,
                         None if events is None else tuple(events), tuple(stores))
    if nvm_words:
        firmware = dataclasses.replace(firmware, qemu_args=_nvm_word_args(nvm_words, power))
    return _run_qemu(project_dir, firmware, meta, input_bytes, power, max_boots, timeout)


def run_exhaustive(project_dir, inputs, window, *, timeout: float = DEFAULT_TIMEOUT_S,
                   max_boots: int | None = None, mode: str | None = None,
                   functions=PROGRESS_FUNCTIONS, lto: bool = False, events=None,
                   stores=STORE_FUNCTIONS, then=()) -> list[RunResult]:
    """Run the firmware once per failure point ``k`` in the window, failing after exactly
    ``k`` instructions.

    The firmware is built once and each run starts from power-on, so run ``i`` shows what
    a failure at instruction ``window[0] + i`` does: a correct commit protocol gives the
    continuous run's outputs for every ``k``.

    Parameters
    ----------
    window : (int, int) or str or Exhaustive or iterable of int
        ``(A, B)``, ``"A:B"`` or an :class:`~tvm_intermittent.sim.power.Exhaustive`: the
        failure points ``A <= k < B``; or any other iterable of failure points.
    then : sequence of int
        Further failures of every run, as offsets from its ``k``: ``then=(d,)`` fails
        once more when ``k + d`` instructions have run (``d`` >= 0; a failure in the boot
        that recovers from the one at ``k`` when ``d`` is shorter than that boot).

    The other parameters are those of :func:`run`.

    Returns
    -------
    results : list of RunResult
        One per failure point, in order.
    """
    points = failure_points(window)
    then = tuple(int(d) for d in then)
    if any(d < 0 for d in then) or list(then) != sorted(then):
        raise InputError(f"further failures need offsets >= 0 in order, got {then}")
    project_dir = Path(project_dir).resolve()
    if default_kind(project_dir) == "msp430" and not lto:
        from . import mspdebug  # pylint: disable=import-outside-toplevel

        if then:
            raise InputError("several failures per run need the QEMU simulator; the MSP430 "
                             "simulator fails once per run")
        return mspdebug.run_exhaustive(project_dir, inputs, points, timeout=timeout,
                                       max_boots=max_boots, mode=mode, functions=functions)
    meta = tensors.load_model_json(project_dir)
    input_bytes = tensors.encode_inputs(meta, inputs)
    _, max_boots = _check_power(None, "qemu", max_boots)
    firmware = _firmware(project_dir, mode, tuple(functions), lto,
                         None if events is None else tuple(events), tuple(stores))

    def schedule(k):
        return FailAtEach((k, *(k + d for d in then))) if then else FailAt(k)

    return [_run_qemu(project_dir, firmware, meta, input_bytes, schedule(k), max_boots,
                      timeout) for k in points]


def _nvm_word_args(nvm_words: dict, power: Schedule) -> tuple:
    """QEMU generic-loader devices that store each word at power-on (and at every reset)."""
    if power.injects_failures:
        raise InputError("nvm_words need continuous power: QEMU stores them again at every "
                         "reset, which would undo what the firmware wrote before a failure")
    args = []
    for address, word in sorted(nvm_words.items()):
        if not (NVM_BASE <= address <= NVM_BASE + NVM_WINDOW_BYTES - 4 and address % 4 == 0):
            raise InputError(f"NVM word address {address:#x} is not an aligned word of the "
                             f"NVM window {NVM_BASE:#x}..{NVM_BASE + NVM_WINDOW_BYTES:#x}")
        args += ["-device", f"loader,addr={address:#x},data={int(word) & 0xFFFFFFFF:#x},"
                 "data-len=4"]
    return tuple(args)


def _execute(cmd, input_bytes: bytes, timeout: float, what: str):
    """Run ``cmd`` in a fresh directory holding ``input.bin``.

    Returns
    -------
    proc, console, seconds, files : CompletedProcess, str, float, dict
        ``files`` maps ``output.bin`` and ``counts.json`` to their bytes (None if absent).
    """
    with tempfile.TemporaryDirectory(prefix="intm-run-") as tmp:
        workdir = Path(tmp)
        (workdir / "input.bin").write_bytes(input_bytes)
        cmd = cmd(workdir) if callable(cmd) else cmd
        env = {k: v for k, v in os.environ.items() if k not in ("INTM_INPUT", "INTM_OUTPUT")}
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            console = _text(err.stdout) + _text(err.stderr)
            raise SimulationError(f"{what} did not finish within {timeout:g} s; console:\n"
                                  f"{console}") from err
        seconds = time.perf_counter() - start
        files = {}
        for name in ("output.bin", "counts.json"):
            path = workdir / name
            files[name] = path.read_bytes() if path.is_file() else None
    return proc, proc.stdout + proc.stderr, seconds, files


def _decode(meta: dict, data: bytes | None, what: str, console: str) -> list:
    try:
        if data is None:
            raise ValueError("no output.bin was written")
        return tensors.decode_outputs(meta, data)
    except ValueError as err:
        raise SimulationError(f"{what}: {err}; console:\n{console}") from err


def _run_host(project_dir: Path, meta: dict, input_bytes: bytes, timeout: float) -> RunResult:
    program = build_project(project_dir, "host")
    what = f"host run of {project_dir.name}"
    proc, console, seconds, files = _execute([str(program)], input_bytes, timeout, what)
    if proc.returncode != 0:
        raise SimulationError(f"{what} exited with status {proc.returncode} "
                              f"({explain_firmware_status(proc.returncode)}); console:\n"
                              f"{console}", firmware_status=proc.returncode)
    return RunResult(outputs=_decode(meta, files["output.bin"], what, console),
                     instructions_total=None, instructions_model=None,
                     exit_status=proc.returncode, console=console, seconds=seconds,
                     kind="host")


def _run_qemu(project_dir: Path, firmware: _Firmware, meta: dict, input_bytes: bytes,
              power: Schedule, max_boots: int, timeout: float) -> RunResult:
    _raise_open_file_limit()
    what = f"qemu run of {project_dir.name}"
    if power.injects_failures:
        what += f" under {power.to_dict()}"

    def command(workdir: Path) -> list[str]:
        return _qemu_command(firmware, workdir / "counts.json",
                             _power_args(power, max_boots, workdir))

    proc, console, seconds, files = _execute(command, input_bytes, timeout, what)
    if not files["counts.json"]:
        raise SimulationError(f"QEMU failed before running the firmware (exit "
                              f"{proc.returncode}) in {what}:\n{console}")
    counts = json.loads(files["counts.json"])

    finished, stop_reason, outputs, status = True, None, None, proc.returncode
    if counts["max_boots_reached"]:
        finished, stop_reason, status = False, "max_boots", None
    elif status == NO_PROGRESS_STATUS:
        finished, stop_reason = False, "no_progress"
    elif status != 0:
        raise SimulationError(
            f"{what} exited with status {status} ({explain_firmware_status(status)}) after "
            f"{counts['boots']} boot(s) and {counts['failures']} power failure(s); "
            f"console:\n{console}", firmware_status=status)
    else:
        outputs = _decode(meta, files["output.bin"], what, console)

    marks = list(counts["marks"])
    ranges = dict(zip(firmware.functions, counts["ranges"]))
    by_phase, by_task, sram_by_task = _split_traffic(firmware, counts)
    return RunResult(
        outputs=outputs,
        instructions_total=counts["instructions"],
        instructions_model=marks[1] - marks[0] if len(marks) == 2 else None,
        exit_status=status,
        console=console,
        seconds=seconds,
        kind="qemu",
        marks=marks,
        commits=[count for i, count in counts["events"]
                 if firmware.events[i] == PROGRESS_FUNCTIONS[0]],
        events=[(firmware.events[i], count) for i, count in counts["events"]],
        stores=[(firmware.stores[i], count) for i, count in counts["stores"]],
        failure_points=list(counts["failure_points"]),
        instructions_scrub=counts["skipped"],
        boots=counts["boots"],
        per_boot_instructions=list(counts["per_boot_instructions"]),
        per_boot_nvm_bytes=list(counts["per_boot_nvm_bytes"]),
        per_boot_nvm_loads=list(counts["per_boot_nvm_loads"]),
        per_boot_nvm_stores=list(counts["per_boot_nvm_stores"]),
        per_boot_nvm_load_bytes=list(counts["per_boot_nvm_load_bytes"]),
        failures=counts["failures"],
        nvm_bytes_written=counts["nvm_bytes_written"],
        traffic=Work.from_dict(counts["traffic"]),
        traffic_by_phase=by_phase,
        traffic_by_task=by_task,
        sram_traffic={key: counts["traffic"][key] for key in SRAM_COUNTS},
        sram_by_task=sram_by_task,
        range_traffic={name: Work.from_dict(r["traffic"]) for name, r in ranges.items()},
        range_instructions={name: r["instructions"] for name, r in ranges.items()},
        range_first={name: r["first"] for name, r in ranges.items()},
        finished=finished,
        stop_reason=stop_reason,
        schedule=power.to_dict(),
        mode=firmware.mode,
        foreign_nvm=[(int(h, 16), int(v)) for h, v in _FOREIGN_NVM.findall(console)],
    )


def _split_traffic(firmware: _Firmware, counts: dict) -> tuple[dict, dict, dict]:
    """The plugin's segments and ranges as work per phase and per task (see PHASES), and
    the SRAM traffic per task."""
    by_phase = dict.fromkeys(PHASES, Work())
    by_phase["boot"] = Work.from_dict(counts["boot_traffic"])
    by_task, sram_by_task = {}, {}
    for name, segment in zip(firmware.events, counts["event_traffic"]):
        work = Work.from_dict(segment)
        phase = _SEGMENT_PHASES.get(name, "kernel")
        by_phase[phase] = by_phase[phase] + work
        task = TASK_FUNCTION.match(name)
        if task and segment["instructions"]:
            by_task[int(task.group(1))] = work
            sram_by_task[int(task.group(1))] = {key: segment[key] for key in SRAM_COUNTS}
    for name, data in zip(firmware.functions, counts["ranges"]):
        if name in _RANGE_PHASES:
            phase = _RANGE_PHASES[name]
            by_phase[phase] = by_phase[phase] + Work.from_dict(data["traffic"])
    return by_phase, dict(sorted(by_task.items())), dict(sorted(sram_by_task.items()))


def _text(stream) -> str:
    if stream is None:
        return ""
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream
