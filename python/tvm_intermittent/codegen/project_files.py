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
    runtime/examples/*.c            an application main loop on the device loop
    Makefile                        ``make qemu``, ``make host``, ``make example``, ``make size``

The board changes only the two sizes in the linker script (and the Makefile's report): the
emulated CPU is the same for every board, and the sizes make the link fail when the model
would not fit the real part.
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
    makefile = dst_dir / "Makefile"
    template = (package / "bsp" / "Makefile.in").read_text()
    makefile.write_text(_fill(template, {**sizes, "MODEL_NAME": model_name}, "Makefile.in"))
    return written + [linker, makefile]
