"""The support files of an exported C project: runtime, board support package, Makefile.

The compiler writes ``model/`` and ``model.json``; :func:`copy_support_files` adds everything
else a project needs to build for QEMU and for the host, so that an exported directory is
self-contained and builds with ``make`` alone::

    model.json                      tensors (names, dtypes, shapes) for the simulator
    model/*.c, model/*.h            generated model code
    runtime/*.c, runtime/*.h        harness (intm_main.c), device loop (intm_app.c), host
                                    platform, shared runtime; intm_status.h generated from
                                    errors.FirmwareStatus
    bsp/qemu_an386/*.c, *.h         startup code, semihosting, QEMU platform
    bsp/qemu_an386/linker.ld        memory layout with this board's SRAM and NVM sizes
    bsp/msp430_sim/*                MSP430 boards only: startup, mailbox I/O, C library and
                                    run-time helpers, linker.ld, intm_io_config.h (the
                                    mailbox sizes, from model.json)
    runtime/examples/*.c            an application main loop on the device loop
    Makefile                        ``make qemu``, ``make host``, ``make example``, ``make size``

The board changes only the two sizes in the linker script (and the Makefile's report): the
emulated CPU is the same for every board, and the sizes make the link fail when the model
would not fit the real part. A board whose ``isa`` is ``msp430`` also gets the MSP430 board
support package, so that the same project builds for both: ``make qemu`` for the Cortex-M4
and ``make msp430`` for the 16-bit MSP430 (docs/msp430.md).
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

from ..board import Board, load_board
from ..errors import BoardError, status_header

#: What QEMU's mps2-an386 backs with RAM at 0x20000000 (SRAM) and 0x21000000 (NVM).
QEMU_SRAM_LIMIT = 4 * 1024 * 1024
QEMU_NVM_LIMIT = 16 * 1024 * 1024

_BSP = "qemu_an386"
_MSP430_BSP = "msp430_sim"
#: Bytes of console the MSP430 mailbox keeps (bsp/msp430_sim/intm_platform_msp430.c).
MSP430_LOG_BYTES = 512
#: Where the MSP430's SRAM and FRAM start and what lies above them (linker.ld.in).
MSP430_SRAM_BASE = 0x1C00
MSP430_FRAM_BASE = 0x4000
MSP430_VECTORS_BASE = 0xFF80
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def _fill(template: str, values: dict[str, object], what: str) -> str:
    """Replace ``@KEY@`` placeholders; a leftover one means the template and code disagree."""
    for key, value in values.items():
        template = template.replace(f"@{key}@", str(value))
    leftover = sorted(set(_PLACEHOLDER.findall(template)))
    if leftover:
        raise RuntimeError(f"{what}: unfilled placeholders {', '.join(leftover)}")
    return template


def _check_board_fits_emulator(board: Board) -> None:
    problems = []
    if board.sram_bytes > QEMU_SRAM_LIMIT:
        problems.append(f"sram_bytes={board.sram_bytes} exceeds the emulator's "
                        f"{QEMU_SRAM_LIMIT} bytes at 0x20000000")
    if board.nvm_bytes > QEMU_NVM_LIMIT:
        problems.append(f"nvm_bytes={board.nvm_bytes} exceeds the emulator's "
                        f"{QEMU_NVM_LIMIT} bytes at 0x21000000")
    if board.sram_bytes % 32:
        problems.append(f"sram_bytes={board.sram_bytes} is not a multiple of 32, which the "
                        "boot-time SRAM scrub needs")
    if problems:
        raise BoardError(f"board {board.name!r} cannot be emulated: " + "; ".join(problems))


def _copy_sources(src, dst_dir: Path) -> list[Path]:
    """Copy the ``.c`` and ``.h`` files of package directory ``src`` into ``dst_dir``."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in sorted(src.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".c", ".h")):
            target = dst_dir / entry.name
            with resources.as_file(entry) as path:
                shutil.copyfile(path, target)
            written.append(target)
    return written


def copy_support_files(dst_dir, board, *, model_name: str | None = None) -> list[Path]:
    """Add the runtime, the QEMU board support package and the Makefile to a project.

    Parameters
    ----------
    dst_dir : str or Path
        The project directory; created if missing. Existing support files are overwritten,
        ``model/`` and ``model.json`` are left alone.
    board : str or Board
        Board profile (name, tag or :class:`~tvm_intermittent.board.Board`) whose SRAM and
        NVM sizes go into the linker script.
    model_name : str, optional
        Name shown by the Makefile; defaults to ``name`` in ``model.json`` if present,
        otherwise to the directory name.

    Returns
    -------
    written : list of Path
        Every file written, so the caller can list or package them.

    Raises
    ------
    BoardError
        If the board's memories are larger than what the emulator backs with RAM.
    """
    dst_dir = Path(dst_dir)
    board = load_board(board)
    _check_board_fits_emulator(board)
    if model_name is None:
        meta = dst_dir / "model.json"
        model_name = json.loads(meta.read_text())["name"] if meta.is_file() else dst_dir.name

    package = resources.files("tvm_intermittent")
    written = _copy_sources(package / "runtime", dst_dir / "runtime")
    written += _copy_sources(package / "runtime" / "examples", dst_dir / "runtime" / "examples")
    # Written from the one table of statuses, not copied: the package's copy could be stale.
    status = dst_dir / "runtime" / "intm_status.h"
    status.write_text(status_header(), encoding="utf-8")
    written = [path for path in written if path != status] + [status]
    bsp_dir = dst_dir / "bsp" / _BSP
    written += _copy_sources(package / "bsp" / _BSP, bsp_dir)

    sizes = {"SRAM_BYTES": board.sram_bytes, "NVM_BYTES": board.nvm_bytes}
    linker = bsp_dir / "linker.ld"
    template = (package / "bsp" / _BSP / "linker.ld.in").read_text()
    linker.write_text(_fill(template, sizes, "linker.ld.in"))
    written.append(linker)
    fram = MSP430_VECTORS_BASE - MSP430_FRAM_BASE
    if board.isa == "msp430":
        written += _copy_msp430_bsp(dst_dir, board, package)
        fram = board.nvm_bytes
    makefile = dst_dir / "Makefile"
    template = (package / "bsp" / "Makefile.in").read_text()
    makefile.write_text(_fill(template, {**sizes, "FRAM_BYTES": fram, "MODEL_NAME": model_name},
                              "Makefile.in"))
    return written + [makefile]


def _tensor_bytes(tensors: list[dict]) -> int:
    from ..sim.tensors import nbytes  # pylint: disable=import-outside-toplevel

    return sum(nbytes(tensor) for tensor in tensors)


def _check_board_fits_msp430(board: Board) -> None:
    problems = []
    if MSP430_SRAM_BASE + board.sram_bytes > MSP430_FRAM_BASE:
        problems.append(f"sram_bytes={board.sram_bytes} exceeds the "
                        f"{MSP430_FRAM_BASE - MSP430_SRAM_BASE} bytes from {MSP430_SRAM_BASE:#x} "
                        f"to FRAM at {MSP430_FRAM_BASE:#x}")
    if MSP430_FRAM_BASE + board.nvm_bytes > MSP430_VECTORS_BASE:
        problems.append(f"nvm_bytes={board.nvm_bytes} exceeds the "
                        f"{MSP430_VECTORS_BASE - MSP430_FRAM_BASE} bytes of FRAM a 16-bit "
                        f"MSP430 addresses below its vectors at {MSP430_VECTORS_BASE:#x}")
    if problems:
        raise BoardError(f"board {board.name!r} cannot be emulated as an MSP430: "
                         + "; ".join(problems))


def _copy_msp430_bsp(dst_dir: Path, board: Board, package) -> list[Path]:
    """The MSP430 board support package, its linker script and its mailbox sizes."""
    _check_board_fits_msp430(board)
    bsp_dir = dst_dir / "bsp" / _MSP430_BSP
    src = package / "bsp" / _MSP430_BSP
    written = _copy_sources(src, bsp_dir)
    for entry in sorted(src.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".S"):
            target = bsp_dir / entry.name
            target.write_bytes(entry.read_bytes())
            written.append(target)
    written += _copy_sources(src / "include", bsp_dir / "include")
    linker = bsp_dir / "linker.ld"
    linker.write_text(_fill((src / "linker.ld.in").read_text(),
                            {"SRAM_BYTES": board.sram_bytes, "FRAM_BYTES": board.nvm_bytes},
                            "msp430 linker.ld.in"))
    meta = dst_dir / "model.json"
    model = json.loads(meta.read_text()) if meta.is_file() else {"inputs": [], "outputs": []}
    config = bsp_dir / "intm_io_config.h"
    config.write_text(
        "/* intm_io_config.h - sizes of the MSP430 mailbox, written by the exporter from\n"
        " * model.json: every input tensor, every output tensor, and the console. */\n"
        "#ifndef INTM_IO_CONFIG_H_\n#define INTM_IO_CONFIG_H_\n"
        f"#define INTM_IO_INPUT_BYTES {_tensor_bytes(model['inputs'])}u\n"
        f"#define INTM_IO_OUTPUT_BYTES {_tensor_bytes(model['outputs'])}u\n"
        f"#define INTM_IO_LOG_BYTES {MSP430_LOG_BYTES}u\n"
        "#endif /* INTM_IO_CONFIG_H_ */\n", encoding="utf-8")
    return written + [linker, config]
