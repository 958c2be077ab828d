"""Which generated kernels do floating-point arithmetic, seen from a Cortex-M0 build.

The Cortex-M0 has no FPU, so GCC turns every float or double operation into a call to a
run-time helper (``__aeabi_fmul``, ``__aeabi_i2f``, ``__aeabi_dadd``, ...) or into a libm
call. Compiling the model's ``kernels.c`` for it, one section per function, and reading the
relocations of each section tells exactly which kernel needs floating point, whatever the
Cortex-M4 build would have done with its FPU.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

#: Run-time helpers of the Arm EABI that do float or double arithmetic or conversions.
FLOAT_HELPER = re.compile(r"^__aeabi_(f|d|[ul]?i2[fd]$|[ul]?l2[fd]$)")
#: libm functions the generated C could call (see codegen/c_printer.py).
LIBM = re.compile(r"^(exp|exp2|log|log2|log10|sqrt|tanh|sin|cos|erf|floor|ceil|trunc|"
                  r"nearbyint|round|fabs|pow|fmod)f?$")


def float_calls(project: Path) -> dict[str, set[str]]:
    """Float helpers and libm functions each kernel of an exported project calls.

    Parameters
    ----------
    project : Path
        An exported project (``model/kernels.c``).

    Returns
    -------
    dict
        Kernel name -> the float functions it calls; kernels without any are left out.
    """
    runtime = resources.files("tvm_intermittent") / "runtime"
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "kernels.o"
        compile_cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft",
                       "-O2", "-ffunction-sections", "-c", str(project / "model" / "kernels.c"),
                       "-I", str(project / "model"), "-I", str(runtime), "-o", str(obj)]
        subprocess.run(compile_cmd, check=True, capture_output=True, text=True)
        relocations = subprocess.run(["arm-none-eabi-objdump", "-r", str(obj)], check=True,
                                     capture_output=True, text=True).stdout
    calls: dict[str, set[str]] = {}
    section = None
    for line in relocations.splitlines():
        header = re.match(r"RELOCATION RECORDS FOR \[\.(?:rel\.)?text\.(\w+)\]", line)
        if header:
            section = header.group(1)
            continue
        parts = line.split()
        if section and len(parts) == 3:
            symbol = parts[2].split("+")[0]
            if FLOAT_HELPER.match(symbol) or LIBM.match(symbol):
                calls.setdefault(section, set()).add(symbol)
    return calls
