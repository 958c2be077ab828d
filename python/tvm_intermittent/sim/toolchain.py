"""Build an exported project with make, and inspect the firmware it produces.

Everything here shells out to ``make``, the host ``cc`` and GNU Arm binutils (for the MSP430
firmware: clang, ld.lld and the LLVM binutils). A missing tool
raises :class:`~tvm_intermittent.errors.ToolchainError` that says what to install, and a
firmware that does not fit the board's memories raises
:class:`~tvm_intermittent.errors.DoesNotFitError` naming the largest static buffers, because
the linker's own message ("region `SRAM' overflowed by N bytes") does not say what to shrink.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..cache import exclusive
from ..errors import DoesNotFitError, ToolchainError

CROSS_PREFIX = "arm-none-eabi-"
ARCH_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CROSS_INSTALL_HINT = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
HOST_INSTALL_HINT = "apt-get install make gcc"
MSP430_INSTALL_HINT = "apt-get install clang lld"
#: The LLVM tools that read MSP430 ELF files (GNU Arm binutils cannot).
MSP430_NM, MSP430_SIZE = "llvm-nm", "llvm-size"

#: Build kinds: make target and the file it produces, relative to the project. ``example`` is
#: the firmware of runtime/examples/intm_app_example.c, an application loop on the runtime.
KINDS = {"qemu": "build/qemu/firmware.elf", "host": "build/host/model_host",
         "example": "build/example/firmware.elf", "msp430": "build/msp430/firmware.elf"}

#: Firmware execution modes (``make qemu MODE=...``): commit after batches of tiles, commit
#: at operator boundaries only, or never commit and start over at every boot.
MODES = ("tiles", "layer", "restart")

#: Symbols that must never be in the firmware: the TVM runtime and any heap.
HEAP_SYMBOLS = frozenset(
    ["malloc", "free", "calloc", "realloc", "_sbrk", "sbrk", "_sbrk_r", "_malloc_r",
     "_free_r", "_calloc_r", "_realloc_r"]
)

#: The boundaries of the emulated memories, as in bsp/qemu_an386/linker.ld.in.
SRAM_BASE = 0x20000000
NVM_BASE = 0x21000000
#: QEMU mps2-an386 backs this much RAM at NVM_BASE (its PSRAM), all of it kept over resets.
NVM_WINDOW_BYTES = 16 * 1024 * 1024

_ERROR_TAIL_LINES = 40
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
#: ld.lld: "section '.text' will not fit in region 'FRAM': overflowed by 123 bytes".
_LLD_OVERFLOW = re.compile(r"section '([^']+)' will not fit in region '(\w+)': overflowed by "
                           r"(\d+) bytes")


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"`{name}` was not found on PATH; install it with: {hint}")
    return path


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _tail(text: str, lines: int = _ERROR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@functools.lru_cache(maxsize=None)
def toolchain_available() -> tuple[bool, str]:
    """Whether the firmware can be built: make, arm-none-eabi-gcc/nm/size and newlib-nano.

    Returns
    -------
    available, reason : (bool, str)
        ``reason`` says what is missing and how to install it, for ``pytest.skip``.
    """
    for tool in ("make", CROSS_PREFIX + "gcc", CROSS_PREFIX + "nm", CROSS_PREFIX + "size"):
        if shutil.which(tool) is None:
            return False, f"`{tool}` not found; install with: {CROSS_INSTALL_HINT}"
    # The compiler package alone ships no C library; newlib-nano comes separately.
    probe = _run([CROSS_PREFIX + "gcc", *ARCH_FLAGS, "-print-file-name=libc_nano.a"])
    if not os.path.isabs(probe.stdout.strip()):
        return False, f"newlib-nano (libc_nano.a) not found; install with: {CROSS_INSTALL_HINT}"
    return True, "arm-none-eabi toolchain found"


@functools.lru_cache(maxsize=None)
def msp430_toolchain_available() -> tuple[bool, str]:
    """Whether the MSP430 firmware can be built: make, clang with the msp430 target, ld.lld
    and llvm-nm/llvm-size.

    Returns
    -------
    available, reason : (bool, str)
        ``reason`` says what is missing and how to install it, for ``pytest.skip``.
    """
    for tool in ("make", "clang", "ld.lld", MSP430_NM, MSP430_SIZE):
        if shutil.which(tool) is None:
            return False, f"`{tool}` not found; install with: {MSP430_INSTALL_HINT}"
    targets = _run(["clang", "-print-targets"]).stdout
    if "msp430" not in targets:
        return False, "this clang has no msp430 target; install Debian's clang"
    return True, "clang --target=msp430 and ld.lld found"


@functools.lru_cache(maxsize=None)
def host_compiler_available() -> tuple[bool, str]:
    """Whether the host build (and the QEMU plugin) can be compiled: ``make`` and ``cc``."""
    for tool in ("make", "cc"):
        if shutil.which(tool) is None:
            return False, f"`{tool}` not found; install with: {HOST_INSTALL_HINT}"
    return True, "host compiler found"


def _project_lock(project_dir: Path):
    """Serialize builds of one project: parallel runs would otherwise race inside make (the
    cache's lock, :func:`..cache.exclusive`, on a file in the build directory)."""
    return exclusive(project_dir / "build" / ".lock")


def _makefile_value(project_dir: Path, name: str) -> str | None:
    match = re.search(rf"^{name}\s*[:?]?=\s*(\S+)", (project_dir / "Makefile").read_text(),
                      re.MULTILINE)
    return match.group(1) if match else None


def _largest_static_buffers(project_dir: Path, region: str, count: int = 5) -> list[str]:
    """The biggest variables the objects put in ``region``, as ``name N B (file)``."""
    prefixes = ((".data", ".bss", "COMMON", ".intm_noinit") if region == "SRAM"
                else (".intm_nvm",))
    build = project_dir / "build" / "qemu"
    found = []
    for obj in sorted(build.rglob("*.o")):
        # objdump -t: "00000000 l     O .bss.name\t00000040 name"
        for line in _run([CROSS_PREFIX + "objdump", "-t", str(obj)]).stdout.splitlines():
            left, _, right = line.partition("\t")
            fields, values = left.split(), right.split()
            if len(values) != 2 or not fields or not fields[-1].startswith(prefixes):
                continue
            found.append((int(values[0], 16), values[1], obj.relative_to(build)))
    found.sort(key=lambda item: (-item[0], item[1]))
    return [f"{name} {size} B ({obj})" for size, name, obj in found[:count] if size > 0]


def _msp430_does_not_fit(project_dir: Path, log: str) -> DoesNotFitError | None:
    """The linker's overflow, with what the region holds and the model's own sizes."""
    overflows = _LLD_OVERFLOW.findall(log)
    if not overflows:
        return None
    meta = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((project_dir / "model.json").read_text())
    problems = []
    # lld reports each section that lies past the end; the last one overflows the most.
    for region in sorted({r for _, r, _ in overflows}):
        excess = max(int(n) for _, r, n in overflows if r == region)
        sections = sorted({s for s, r, _ in overflows if r == region})
        budget = _makefile_value(project_dir, f"{region}_BYTES") or "?"
        holds = ("code, constants and NVM (progress record, activations, I/O mailbox)"
                 if region == "FRAM" else ".data + .bss + the stack reserve")
        problems.append(f"{region} overflowed by at least {excess} bytes at {', '.join(sections)} "
                        f"(the board has {budget} bytes for {holds})")
    sizes = [f"{key.replace('_', ' ')} {meta[key]:,} B" for key in ("weight_bytes", "arena_bytes")
             if isinstance(meta.get(key), int)]
    return DoesNotFitError(f"{project_dir}: does not fit the MSP430's 64 KiB address space: "
                           + "; ".join(problems) + (f"; the model has {', '.join(sizes)}"
                                                    if sizes else ""))


#: Floating-point helpers of the MSP430 EABI and libm functions, as lld names them undefined.
_MSP430_FLOAT = re.compile(r"undefined symbol: (__mspabi_\w+[fd]|__mspabi_(?:flt|fix)\w+|"
                           r"(?:exp|log|sqrt|tanh|floor|ceil|round|fabs|pow|erf|nearbyint|"
                           r"trunc)f)\b")


def _msp430_float_error(project_dir: Path, log: str) -> ToolchainError | None:
    """A float function the MSP430 build lacks (a libm function, a double helper): say so."""
    found = sorted(set(_MSP430_FLOAT.findall(log)))
    if not found:
        return None
    return ToolchainError(
        f"{project_dir}: the model needs floating-point functions that the MSP430 build "
        f"does not provide ({', '.join(found)}; bsp/msp430_sim/intm_softfloat.c has + - * /, "
        "comparisons, conversions and expf); compile an int8 model (TFLite int8, or QDQ "
        "ONNX) for the MSP430, or run this one on a Cortex-M4 board")


def _does_not_fit(project_dir: Path, log: str) -> DoesNotFitError | None:
    overflows = _OVERFLOW.findall(log)
    if not overflows:
        return None
    problems = []
    for region, excess in dict(overflows).items():
        budget = _makefile_value(project_dir, f"{region}_BYTES") or "?"
        if region == "SRAM":
            stack = _makefile_value(project_dir, "STACK_BYTES") or "?"
            holds = f".data + .bss + .intm_noinit + the {stack}-byte stack reserve"
        else:
            holds = "the .intm_nvm section"
        biggest = _largest_static_buffers(project_dir, region)
        problems.append(
            f"{region} overflowed by {excess} bytes (the board has {budget} bytes for {holds})"
            + (f"; largest buffers: {', '.join(biggest)}" if biggest else "")
        )
    return DoesNotFitError(f"{project_dir}: does not fit the board: " + "; ".join(problems))


def _supports_modes(project_dir: Path) -> bool:
    """Whether the project's Makefile takes ``MODE=`` (older exports build one variant)."""
    return re.search(r"^MODE\s*[:?]?=", (project_dir / "Makefile").read_text(),
                     re.MULTILINE) is not None


def _supports_lto(project_dir: Path) -> bool:
    """Whether the project's Makefile takes ``LTO=`` (older exports do not)."""
    return re.search(r"^LTO\s*[:?]?=", (project_dir / "Makefile").read_text(),
                     re.MULTILINE) is not None


def build_project(project_dir, kind: str = "qemu", mode: str | None = None,
                  lto: bool = False) -> Path:
    """Build an exported project with ``make`` and return the program it produced.

    Make is incremental, so calling this before every run costs little once built.

    Parameters
    ----------
    project_dir : str or Path
        A directory written by the exporter (``Makefile``, ``model/``, ``runtime/``, ``bsp/``).
    kind : {"qemu", "host", "example", "msp430"}
        ``"qemu"`` builds ``build/qemu/firmware.elf`` with arm-none-eabi-gcc;
        ``"msp430"`` builds ``build/msp430/firmware.elf`` with clang and ld.lld (projects
        of MSP430 boards only);
        ``"host"`` builds ``build/host/model_host`` with the host's ``cc``;
        ``"example"`` builds ``build/example/firmware.elf``, the firmware of the example
        application loop (``runtime/examples/intm_app_example.c``) instead of the harness.
    mode : {"tiles", "layer", "restart"}, optional
        Firmware variant (see :data:`MODES`), built by ``make qemu MODE=<mode>`` into
        ``build/qemu-<mode>/firmware.elf``. None builds the Makefile's default; so does any
        mode when the Makefile predates modes, or for the host build.
    lto : bool
        Compile and link the firmware with ``-flto`` (``make qemu LTO=1``), into a directory
        of its own (``build/qemu-lto``, ``build/qemu-<mode>-lto``).

    Returns
    -------
    program : Path
        The ELF firmware or the host executable.

    Raises
    ------
    ToolchainError
        A tool is missing (the message says what to install), the Makefile predates the
        ``LTO=`` knob, or compiling failed (the message ends with the tail of the compiler's
        output).
    DoesNotFitError
        The firmware does not fit the board's SRAM or NVM; names the largest buffers.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "Makefile").is_file():
        raise ToolchainError(f"{project_dir} has no Makefile; export the project first")
    if lto and kind in ("host", "msp430"):
        raise ValueError(f"lto applies to the Arm firmware (kind 'qemu' or 'example'), not "
                         f"{kind!r}")
    if kind == "msp430" and not (project_dir / "bsp" / "msp430_sim").is_dir():
        raise ToolchainError(f"{project_dir} has no MSP430 board support package; export it "
                             "for an MSP430 board (--board msp430-sim)")
    available, reason = {"host": host_compiler_available,
                         "msp430": msp430_toolchain_available}.get(kind, toolchain_available)()
    if not available:
        raise ToolchainError(reason)
    if lto and not _supports_lto(project_dir):
        raise ToolchainError(f"{project_dir}: its Makefile has no LTO= knob; export the "
                             "project again")
    make = _tool("make", HOST_INSTALL_HINT)
    goal, program = [kind], project_dir / KINDS[kind]
    if kind != "host":
        use_mode = mode is not None and _supports_modes(project_dir)
        suffix = (f"-{mode}" if use_mode else "") + ("-lto" if lto else "")
        goal += [f"MODE={mode}"] if use_mode else []
        goal += ["LTO=1"] if lto else []
        program = program.parent.with_name(program.parent.name + suffix) / program.name
    with _project_lock(project_dir):
        # Silent, so that the compiler's messages end the log instead of its command lines.
        result = _run([make, "-s", "--no-print-directory", "-C", str(project_dir), *goal])
    if result.returncode != 0:
        log = result.stdout + result.stderr
        error = {"host": lambda *_: None, "msp430": _msp430_does_not_fit}.get(
            kind, _does_not_fit)(project_dir, log)
        if error is None and kind == "msp430":
            error = _msp430_float_error(project_dir, log)
        if error is not None:
            raise error
        raise ToolchainError(f"`make {' '.join(goal)}` failed in {project_dir} (exit "
                             f"{result.returncode}):\n{_tail(log)}")
    return program


def symbols(elf, nm_tool: str | None = None) -> dict[str, tuple[int, int]]:
    """Every defined symbol of ``elf`` as ``name -> (address, size)``, Thumb bit cleared.

    ``nm_tool`` is the nm to use (default arm-none-eabi-nm; ``MSP430_NM`` for MSP430 ELF).
    """
    nm = (_tool(nm_tool, MSP430_INSTALL_HINT) if nm_tool
          else _tool(CROSS_PREFIX + "nm", CROSS_INSTALL_HINT))
    result = _run([nm, "-S", str(elf)])
    if result.returncode != 0:
        raise ToolchainError(f"`nm` failed on {elf}:\n{_tail(result.stderr)}")
    table = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            address, size, name = int(parts[0], 16), int(parts[1], 16), parts[3]
        elif len(parts) == 3:
            address, size, name = int(parts[0], 16), 0, parts[2]
        else:
            continue  # undefined symbols have no address
        # Arm's Thumb bit; MSP430 data may sit at odd addresses and keeps its low bit.
        table[name] = (address if nm_tool else address & ~1, size)
    return table


def section_sizes(elf) -> dict[str, int]:
    """Bytes of the firmware by kind of memory, from ``arm-none-eabi-size -A``.

    The Berkeley totals of ``size`` would count the stack reserve and NVM as bss; this sums
    sections by where they live instead.

    Returns
    -------
    sizes : dict
        ``text`` (code and constants in flash), ``data`` (initialised SRAM, whose initial
        values also take flash), ``bss`` (zeroed SRAM), ``stack`` (the stack reserve checked
        at link time) and ``nvm`` (the ``.intm_nvm`` section).
    """
    size = _tool(CROSS_PREFIX + "size", CROSS_INSTALL_HINT)
    result = _run([size, "-A", "-d", str(elf)])
    if result.returncode != 0:
        raise ToolchainError(f"`size` failed on {elf}:\n{_tail(result.stderr)}")
    sizes = dict(text=0, data=0, bss=0, stack=0, nvm=0)
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        name, nbytes, address = parts[0], int(parts[1]), int(parts[2])
        if re.match(r"\.(debug|comment|ARM\.attributes|stab)", name):
            continue  # not loaded into memory
        if name == ".data":
            sizes["data"] += nbytes
        elif name == ".intm_stack":
            sizes["stack"] += nbytes
        elif address >= NVM_BASE:
            sizes["nvm"] += nbytes
        elif address >= SRAM_BASE:
            sizes["bss"] += nbytes
        else:
            sizes["text"] += nbytes
    return sizes


def stack_usage(build_dir) -> dict[str, int]:
    """Stack bytes of each function, from the ``.su`` files GCC's ``-fstack-usage`` wrote.

    Parameters
    ----------
    build_dir : str or Path
        Searched recursively, e.g. ``<project>/build/qemu``.

    Returns
    -------
    usage : dict
        ``function -> bytes`` of its own frame (callees not included). A name defined in
        several files (static functions) keeps the largest frame. For the rare function
        GCC marks "dynamic" the number is a lower bound.
    """
    usage: dict[str, int] = {}
    for su_file in sorted(Path(build_dir).rglob("*.su")):
        for line in su_file.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) < 2 or not fields[1].strip().isdigit():
                continue
            name = fields[0].rsplit(":", 1)[-1]
            usage[name] = max(usage.get(name, 0), int(fields[1]))
    return usage


def forbidden_symbols(elf) -> list[str]:
    """Symbols the firmware must not contain: any TVM runtime, and any heap allocator.

    The generated C is meant to stand alone on a microcontroller without a heap; a symbol
    here means some code path still calls into the TVM runtime or allocates memory.

    Returns
    -------
    names : list of str
        Sorted; empty when the firmware is clean.
    """
    nm = _tool(CROSS_PREFIX + "nm", CROSS_INSTALL_HINT)
    result = _run([nm, str(elf)])
    if result.returncode != 0:
        raise ToolchainError(f"`nm` failed on {elf}:\n{_tail(result.stderr)}")
    found = set()
    for line in result.stdout.splitlines():
        name = line.split()[-1] if line.split() else ""
        if "tvm" in name.lower() or name in HEAP_SYMBOLS:
            found.add(name)
    return sorted(found)
