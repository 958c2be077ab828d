"""``run --profile``: the per-operator profile of one continuous inference on QEMU.

The table (or ``--json``) gives per task its operator, MACs, instructions, instructions per
MAC, commits and share of the inference (:mod:`tvm_intermittent.sim.profile`). With
``--check`` the outputs of the profiled runs are compared with the reference runtime, and
``--output`` saves them, as a plain ``run`` does.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExitStatus, InputError


def cmd_profile(args, env, project: Path, manifest: dict, inputs) -> int:
    """Profile ``project`` on ``inputs`` and print the table; the CLI's exit status.

    The profile needs QEMU's counts of a run without power failures, so ``--host`` and
    ``--power`` are refused with what to drop.
    """
    # pylint: disable=import-outside-toplevel
    from ..check import compare_outputs
    from ..sim.profile import profile
    from .core import _emit, _max_lsb, _save_outputs, reference_outputs

    if args.host:
        raise InputError("--profile counts instructions on QEMU; drop --host")
    if args.power != "none":
        raise InputError("--profile measures a continuous run; drop --power or --profile")
    if not manifest.get("tasks") or "macs" not in manifest["tasks"][0]:
        raise InputError(f"{str(project)!r} was compiled before the profile existed (its "
                         "model.json has no MACs per task); compile the model again")
    tasks = len(manifest["tasks"])
    with env.step(f"profiling {tasks} tasks on QEMU mps2-an386 "
                  f"({-(-tasks // 8)} run(s), 8 tasks each)"):
        result = profile(project, inputs, timeout=args.timeout)
    report, text = result.to_dict(), result.table()
    status = ExitStatus.OK
    if args.check:
        with env.step("running the reference runtime"):
            expected, scales = reference_outputs(project, manifest, inputs)
        check = compare_outputs(result.outputs, expected, max_lsb=_max_lsb(args, manifest),
                                lsb_scales=scales)
        report["check"] = check.to_dict()
        text += "\ncheck against the reference: " + check.summary()
        status = ExitStatus.OK if check.ok else ExitStatus.MISMATCH
    if args.output:
        _save_outputs(args.output, result.outputs, manifest["outputs"])
    _emit(env, args, report, text)
    return status
