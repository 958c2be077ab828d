"""Run an exported project on QEMU mps2-an386 (or natively) and count its instructions.

One :func:`run` is one power-on of the board, fed from a fresh temporary directory:

1. check the inputs against ``model.json`` and write them to ``input.bin``;
2. build the project (incremental ``make``);
3. start ``qemu-system-arm`` with semihosting, ``-icount shift=0`` (timers count
   instructions, so runs are deterministic) and the ``intm_icount`` plugin, which counts
   executed instructions and records the count at each call of ``intm_mark()``;
4. read ``output.bin`` and the plugin's counts.

The boot-time SRAM scrub (``intm_scrub_sram``, which stands for the loss of SRAM contents
at power-off, not for firmware work) is counted apart in ``instructions_scrub``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from ..errors import SimulationError, ToolchainError
from . import tensors
from .toolchain import HOST_INSTALL_HINT, build_project, host_compiler_available, symbols

QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"
QEMU_INSTALL_HINT = "apt-get install qemu-system-arm"
DEFAULT_TIMEOUT_S = 120.0

_PLUGIN_SOURCE = "intm_icount.c"
_PLUGIN_FLAGS = ["-shared", "-fPIC", "-O2", "-fvisibility=hidden"]
#: Exception names by number, for firmware that exits with 128 + the exception number.
_EXCEPTIONS = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault",
               11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}
#: Meaning of the harness's own exit statuses (intm_status_t values).
_STATUSES = {1: "I/O error reading input.bin or writing output.bin",
             2: "input.bin has the wrong number of bytes",
             3: "a kernel reported failure"}


@dataclasses.dataclass
class RunResult:
    """What one run of the firmware produced.

    Attributes
    ----------
    outputs : list of numpy.ndarray
        The model's outputs, with the dtypes and shapes of ``model.json``.
    instructions_total : int or None
        Instructions executed from reset to exit, without the SRAM scrub (None on host).
    instructions_model : int or None
        Instructions between the two ``intm_mark()`` calls around ``intm_model_run()``
        (None on host, or when the firmware did not mark exactly twice).
    exit_status : int
        The firmware's exit status (always 0 here: other statuses raise).
    console : str
        Everything the firmware (and QEMU) printed.
    seconds : float
        Wall time of the emulator or host program, without the build.
    kind : str
        ``"qemu"`` or ``"host"``.
    marks : list of int
        The raw instruction count at each ``intm_mark()`` call.
    instructions_scrub : int or None
        Instructions spent scrubbing SRAM at boot (None on host).
    """

    outputs: list
    instructions_total: int | None
    instructions_model: int | None
    exit_status: int
    console: str
    seconds: float
    kind: str = "qemu"
    marks: list = dataclasses.field(default_factory=list)
    instructions_scrub: int | None = None


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


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tvm-intermittent"


def plugin_path() -> Path:
    """The compiled instruction-counting plugin, built on first use and cached.

    The shared object lives in ``~/.cache/tvm-intermittent/plugin-<hash>.so`` (or under
    ``$XDG_CACHE_HOME``), named by a hash of its source and flags, so an edited plugin is
    rebuilt and concurrent first uses cannot see a half-written file (compile to a temporary
    file, then rename).

    Raises
    ------
    ToolchainError
        When there is no host ``cc`` or the plugin does not compile.
    """
    source = resources.files(__package__).joinpath("plugin", _PLUGIN_SOURCE).read_bytes()
    digest = hashlib.sha256(source + " ".join(_PLUGIN_FLAGS).encode()).hexdigest()[:16]
    cache = _cache_dir()
    target = cache / f"plugin-{digest}.so"
    if target.is_file():
        return target
    cc = shutil.which("cc")
    if cc is None:
        raise ToolchainError(f"`cc` not found (needed for the QEMU plugin); install with: "
                             f"{HOST_INSTALL_HINT}")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="plugin-build-") as tmp:
        src = Path(tmp) / _PLUGIN_SOURCE
        src.write_bytes(source)
        out = Path(tmp) / "plugin.so"
        result = subprocess.run([cc, *_PLUGIN_FLAGS, "-o", str(out), str(src)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ToolchainError(f"compiling the QEMU plugin failed:\n{result.stderr.strip()}")
        os.replace(out, target)
    return target


def _qemu_option(value) -> str:
    """Escape a value inside a QEMU ``a=b,c=d`` option, where a comma is written twice."""
    return str(value).replace(",", ",,")


def _qemu_command(elf: Path, counts: Path) -> list[str]:
    table = symbols(elf)
    plugin_args = [f"out={_qemu_option(counts)}"]
    if "intm_mark" in table:
        plugin_args.append(f"mark={table['intm_mark'][0]:#x}")
    if "intm_scrub_sram" in table:
        start, size = table["intm_scrub_sram"]
        plugin_args.append(f"skip={start:#x}:{start + size:#x}")
    return [
        QEMU, "-M", QEMU_MACHINE, "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native",
        "-icount", "shift=0",
        "-plugin", ",".join([_qemu_option(plugin_path()), *plugin_args]),
        "-kernel", str(elf),
    ]


def _explain_status(status: int) -> str:
    if status in _STATUSES:
        return _STATUSES[status]
    if status >= 128:
        number = status - 128
        name = _EXCEPTIONS.get(number, "interrupt" if number >= 16 else "exception")
        return f"CPU fault: {name} (exception {number})"
    if status < 0:
        return f"killed by signal {-status}"
    return "unknown status"


def run(project_dir, inputs, *, timeout: float = DEFAULT_TIMEOUT_S, kind: str = "qemu"
        ) -> RunResult:
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
    kind : {"qemu", "host"}
        Run the firmware on QEMU (with instruction counts) or the host build (outputs only).

    Returns
    -------
    RunResult

    Raises
    ------
    InputError
        The inputs do not match ``model.json`` (count, shape or dtype).
    ToolchainError, DoesNotFitError
        From :func:`~tvm_intermittent.sim.toolchain.build_project`.
    SimulationError
        The program crashed, exited with a nonzero status, timed out, or wrote the wrong
        number of output bytes; the message includes its console output.

    Examples
    --------
    .. code-block:: python

        result = sim.run("out/kws", [x])
        print(result.outputs[0], result.instructions_model)
    """
    project_dir = Path(project_dir).resolve()
    meta = tensors.load_model_json(project_dir)
    input_bytes = tensors.encode_inputs(meta, inputs)
    program = build_project(project_dir, kind)

    with tempfile.TemporaryDirectory(prefix="intm-run-") as tmp:
        workdir = Path(tmp)
        (workdir / "input.bin").write_bytes(input_bytes)
        counts_path = workdir / "counts.json"
        if kind == "qemu":
            cmd = _qemu_command(program, counts_path)
        else:
            cmd = [str(program)]
        env = {k: v for k, v in os.environ.items() if k not in ("INTM_INPUT", "INTM_OUTPUT")}
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            console = _text(err.stdout) + _text(err.stderr)
            raise SimulationError(f"{kind} run of {project_dir.name} did not finish within "
                                  f"{timeout:g} s; console:\n{console}") from err
        seconds = time.perf_counter() - start
        console = proc.stdout + proc.stderr
        counts = json.loads(counts_path.read_text()) if counts_path.is_file() else None

        if kind == "qemu" and counts is None:
            raise SimulationError(f"QEMU failed before running the firmware (exit "
                                  f"{proc.returncode}): {' '.join(cmd)}\n{console}")
        if proc.returncode != 0:
            raise SimulationError(
                f"{kind} run of {project_dir.name} exited with status {proc.returncode} "
                f"({_explain_status(proc.returncode)}); console:\n{console}"
            )
        output_path = workdir / "output.bin"
        try:
            outputs = tensors.decode_outputs(meta, output_path.read_bytes())
        except (OSError, ValueError) as err:
            raise SimulationError(f"{kind} run of {project_dir.name}: {err}; console:\n"
                                  f"{console}") from err

    marks = list(counts["marks"]) if counts else []
    return RunResult(
        outputs=outputs,
        instructions_total=counts["instructions"] if counts else None,
        instructions_model=marks[1] - marks[0] if len(marks) == 2 else None,
        exit_status=proc.returncode,
        console=console,
        seconds=seconds,
        kind=kind,
        marks=marks,
        instructions_scrub=counts["skipped"] if counts else None,
    )


def _text(stream) -> str:
    if stream is None:
        return ""
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream
