"""``run --profile``: the per-operator profile of one continuous inference on QEMU.

The table (or ``--json``) gives per task its operator, MACs, instructions, instructions per
MAC, commits, share of the inference and the NVM bytes its tiles read and wrote
(:mod:`tvm_intermittent.sim.profile`). With
``--check`` the outputs of the profiled runs are compared with the reference runtime, and
``--output`` saves them, as a plain ``run`` does.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExitStatus, InputError
from .tensor_files import save_outputs


def cmd_profile(args, env, project: Path, manifest: dict, inputs) -> int:
    """Profile ``project`` on ``inputs`` and print the table; the CLI's exit status.

    The profile needs QEMU's counts of the default firmware run without power failures, so
    ``--host``, ``--power`` and ``--mode`` are refused with what to drop.
    """
    # pylint: disable=import-outside-toplevel
    from ..sim import default_kind
    from ..sim.profile import profile
    from .core import _check, _emit

    if args.host:
        raise InputError("--profile counts instructions on QEMU; drop --host")
    if args.power != "none":
        raise InputError("--profile measures a continuous run; drop --power or --profile")
    if default_kind(project) != "qemu":
        raise InputError(f"--profile counts the Cortex-M4 firmware on QEMU; board "
                         f"{manifest.get('board')} runs another ISA: compile for a Cortex-M "
                         "board (e.g. --board qemu-an386) to profile it")
    if args.mode is not None:
        raise InputError("--profile measures the default (tiles) firmware; drop --mode")
    if not manifest.get("tasks") or "macs" not in manifest["tasks"][0]:
        raise InputError(f"{str(project)!r} was compiled before the profile existed (its "
                         "model.json has no MACs per task); compile the model again")
    tasks = len(manifest["tasks"])
    with env.step(f"profiling {tasks} tasks on QEMU mps2-an386 (one continuous run)"):
        result = profile(project, inputs, timeout=args.timeout)
    report, text = result.to_dict(), result.table()
    status = ExitStatus.OK
    check = _check(args, env, project, manifest, inputs, result.outputs)
    if check is not None:
        report["check"] = check.to_dict()
        text += "\ncheck against the reference: " + check.summary()
        status = ExitStatus.OK if check.ok else ExitStatus.MISMATCH
    if args.output:
        save_outputs(args.output, result.outputs, manifest["outputs"])
    _emit(env, args, report, text)
    return status
