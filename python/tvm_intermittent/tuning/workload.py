"""Tuning tasks: one per kernel of a model, with the workload MetaSchedule schedules.

The kernels are lowered, block-free TIR (:mod:`..transform.lower`), many of them hand-built
statements with no blocks at all, so MetaSchedule's loop primitives have nothing to work on.
The workload of a kernel is therefore its lowered PrimFunc wrapped in one opaque root block
(:func:`workload_of`): ``tvm.s_tir.Schedule`` accepts it, a trace can sample the tiling knobs
and annotate that block (:mod:`.space`), and the JSON database keys records by the
workload's structural hash, which is the kernel's TIR and nothing of the board: a record
measured on one board matches the same kernel compiled for another.
"""

from __future__ import annotations

import dataclasses

import tvm
from tvm import s_tir, tirx

from ..codegen.c_printer import written_parameters
from ..codegen.tiling import TilePlan, _separable_depth, loop_chain
from ..energy.kernel_cost import Features

#: Function attribute of a workload: the kernel's name in the model (for reports; the
#: database matches workloads by structure).
KERNEL_ATTR = "intermittent.kernel"
ROOT_BLOCK = "root"


def workload_of(func: tirx.PrimFunc, kernel: str) -> tvm.IRModule:
    """``{"main": func}`` with the body inside an opaque root block named ``root``."""
    block = s_tir.SBlock([], [], [], ROOT_BLOCK, func.body)
    realize = s_tir.SBlockRealize([], tirx.const(True, "bool"), block)
    main = func.with_body(realize).with_attr(KERNEL_ATTR, kernel)
    return tvm.IRModule({"main": main})


def unwrap(mod: tvm.IRModule) -> tirx.PrimFunc:
    """The kernel of a workload (scheduled or not): the root block's body as the function
    body again, the annotations dropped."""
    main = mod["main"]
    body = main.body
    return main.with_body(body.block.body if hasattr(body, "block") else body)


@dataclasses.dataclass(eq=False)  # hashed by identity: caches key on the task
class TuningTask:
    """One kernel to tune.

    Attributes
    ----------
    kernel : str
        Its name in the model.
    func : tvm.tirx.PrimFunc
        The kernel as lowered (before any split).
    mod : tvm.IRModule
        Its workload (:func:`workload_of`).
    indices : list of int
        Positions of its calls in the task table.
    default : TilePlan
        The analytic rule's plan for the board and power environment.
    features : Features
        Executed counts of the whole kernel (:func:`..energy.kernel_cost.kernel_features`).
    placement : dict
        ``parameter -> "nvm" | "flash"``.
    usable : int
        Leading loops that give each iteration its own outputs (the deepest tile).
    extents : list of int
        Extents of the kernel's loop chain.
    variants : dict
        ``variant number -> TuningTask``: the other kernels the lowering builds for this
        operator (:mod:`.variants`), each a task of its own kernel with this task's calls.
    variant : int
        0, or the variant number this task's kernel is (a task of ``variants``).
    """

    kernel: str
    func: tirx.PrimFunc
    mod: tvm.IRModule
    indices: list
    default: TilePlan
    features: Features
    placement: dict
    usable: int
    extents: list
    variants: dict = dataclasses.field(default_factory=dict)
    variant: int = 0

    def for_knobs(self, knobs) -> "TuningTask":
        """The task whose kernel ``knobs`` tile: this one, or the variant ``knobs.variant``
        names, whose kernel, loops, counts and workload are its own.

        Raises
        ------
        CandidateError
            A variant the lowering does not build for this operator on this board.
        """
        number = getattr(knobs, "variant", 0)
        if number in (0, self.variant):
            return self
        if number in self.variants:
            return self.variants[number]
        from .knobs import CandidateError  # pylint: disable=import-outside-toplevel
        from .variants import describe  # pylint: disable=import-outside-toplevel

        offers = ", ".join(describe(n) for n in sorted(self.variants)) or "none"
        raise CandidateError(f"operator {self.kernel}: {describe(number)} is not a kernel the "
                             f"lowering builds for this operator here (its variants: {offers})")

    @property
    def macs(self) -> int:
        from ..transform.integer_kernels import MACS_ATTR  # pylint: disable=C0415

        attrs = self.func.attrs
        return int(attrs[MACS_ATTR]) if attrs is not None and MACS_ATTR in attrs else 0


def extract_tasks(artifact_or_model, board=None, power_env=None) -> list[TuningTask]:
    """The tuning tasks of a model, in task-table order of their first call.

    Parameters
    ----------
    artifact_or_model : Artifact, builder.Prepared, or anything ``build`` takes
        An artifact or a prepared model (its kernels and default plans), or a model to
        prepare and tile for ``board`` and ``power_env``.
    board, power_env : optional
        As for :func:`tvm_intermittent.build` (only when a model is given).
    """
    # pylint: disable=import-outside-toplevel
    from .. import builder

    prepared = artifact_or_model
    if not isinstance(prepared, builder.Prepared):
        if isinstance(prepared, builder.Artifact):
            raise TypeError("extract_tasks needs the prepared model (builder.prepare) of an "
                            "artifact: an artifact keeps no lowered kernels")
        prepared = builder.prepare(prepared, board=board, power_env=power_env)
    artifact = builder.assemble(prepared)
    return tasks_of(prepared, artifact)


def tasks_of(prepared, artifact) -> list[TuningTask]:
    """The tuning tasks of a prepared model and its analytic build."""
    tasks = []
    for kernel, func in prepared.lowered.items():
        indices = [i for i, k in enumerate(artifact.tasks) if k == kernel]
        if not indices:
            continue
        chain = loop_chain(func)
        usable = _separable_depth(func, chain, written_parameters(func))
        tasks.append(TuningTask(kernel, func, workload_of(func, kernel), indices,
                                artifact.tiles[kernel], artifact.features[kernel],
                                prepared.placements.get(kernel) or {}, usable,
                                [int(loop.extent) for loop in chain]))
    tasks.sort(key=lambda t: t.indices[0])
    from .variants import attach  # pylint: disable=import-outside-toplevel

    attach(prepared, tasks)
    return tasks


def variant_task(task: TuningTask, func: tirx.PrimFunc, placement: dict,
                 number: int) -> TuningTask:
    """The task of ``task``'s operator built as variant ``number`` (kernel ``func``): its
    own workload, loops and counts; the default build's calls and plan."""
    from ..energy.kernel_cost import kernel_features  # pylint: disable=import-outside-toplevel

    chain = loop_chain(func)
    return TuningTask(task.kernel, func, workload_of(func, task.kernel), task.indices,
                      task.default, kernel_features(func, placement or None), placement,
                      _separable_depth(func, chain, written_parameters(func)),
                      [int(loop.extent) for loop in chain], variant=number)


@dataclasses.dataclass(eq=False)
class ModelTasks:
    """A model prepared for tuning: its default build and one task per kernel.

    The default plan of a kernel is the analytic rule's. Where the rule refuses a kernel
    (its smallest tile needs more than the rule's margin of one charge), the default is the
    tuner's smallest tile instead (:func:`smallest_tiles`), so that the model can be tuned,
    and built from a log, on a capacitor the rule does not run it on; ``refused`` says
    which kernels and why.

    Attributes
    ----------
    prepared : builder.Prepared
        The imported, lowered model (assembled once per candidate).
    artifact : builder.Artifact
        Its default build.
    manifest : dict
        That build's ``model.json`` (what the predictor reads).
    tasks : list of TuningTask
        In task-table order.
    refused : dict
        ``kernel -> the analytic rule's refusal`` of the kernels whose default is the
        tuner's smallest tile.
    base : dict
        ``kernel -> Candidate``: those smallest tiles (every build of the model takes them
        unless a candidate of that kernel replaces it).
    """

    prepared: object
    artifact: object
    manifest: dict
    tasks: list
    refused: dict = dataclasses.field(default_factory=dict)
    base: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, prepared) -> "ModelTasks":
        from .. import builder  # pylint: disable=import-outside-toplevel
        from ..errors import DoesNotFitError  # pylint: disable=import-outside-toplevel

        try:
            artifact = builder.assemble(prepared)
        except DoesNotFitError:
            refused, base = smallest_tiles(prepared)
            if not refused:
                raise  # not the power cycle: the memory check, which no tiling changes
            artifact = builder.assemble(prepared, {k: (c.func, c.plan) for k, c in base.items()})
            return cls(prepared, artifact, artifact.manifest(), tasks_of(prepared, artifact),
                       refused, base)
        return cls(prepared, artifact, artifact.manifest(), tasks_of(prepared, artifact))

    def plans(self, overrides: dict) -> dict:
        """``kernel -> (tiled func, plan)`` of a build: ``overrides`` over the smallest tiles
        of the kernels the analytic rule refuses."""
        return {**{k: (c.func, c.plan) for k, c in self.base.items()}, **overrides}

    def task(self, kernel: str) -> TuningTask:
        for task in self.tasks:
            if task.kernel == kernel:
                return task
        raise KeyError(f"no tuning task for kernel {kernel!r}")

    def task_of(self, mod) -> TuningTask:
        """The task whose workload ``mod`` (a scheduled one too) is."""
        main = mod["main"] if hasattr(mod, "functions") else mod
        return self.task(str(main.attrs[KERNEL_ATTR]))

    @property
    def static_scratch(self) -> int:
        return int(self.artifact.sources.kernel_static_scratch_bytes)


def smallest_tiles(prepared) -> tuple[dict, dict]:
    """The kernels of ``prepared`` the analytic rule refuses, and for each the tuner's
    smallest tile that fits one charge.

    The rule keeps half of what a charge leaves after boot, restore and commit for one
    batch (``TilingPolicy.margin``); the tuner keeps :data:`.constraints.TUNING_MARGIN`,
    since its candidates are measured under the power environment and one that does not
    fit fails there. So a kernel whose smallest tile the rule refuses may still be tuned:
    its default becomes the valid candidate (:func:`.constraints.check_candidate`) whose
    batch needs least, one tile of every separable loop per commit, the likeliest to
    finish. A kernel with no valid candidate keeps the rule's refusal.

    Returns
    -------
    refused : dict
        ``kernel -> the analytic rule's refusal``.
    base : dict
        ``kernel -> Candidate``.

    Raises
    ------
    DoesNotFitError
        When a refused kernel has no valid candidate either: the rule's refusals of those
        kernels, each with the tuner's smallest batch and its limit.
    """
    # pylint: disable=import-outside-toplevel,protected-access
    from .. import builder
    from ..energy.kernel_cost import kernel_features
    from ..errors import DoesNotFitError
    from .apply import build_environment
    from .constraints import TUNING_MARGIN, check_candidate
    from .knobs import CandidateError
    from .space import candidates

    env = build_environment(prepared)
    steps = [step.kernel for step in prepared.graph.steps]
    refused, base, hopeless = {}, {}, []
    for kernel, func in prepared.lowered.items():
        try:
            builder._plan_all_tiles({kernel: func}, prepared.board, prepared.tile_budget,
                                    prepared.tiling, prepared.placements)
            continue
        except DoesNotFitError as err:
            refused[kernel] = str(err).split("\n", 1)[-1].strip()
        chain = loop_chain(func)
        placement = prepared.placements.get(kernel) or {}
        task = TuningTask(kernel, func, workload_of(func, kernel),
                          [i for i, k in enumerate(steps) if k == kernel], None,
                          kernel_features(func, prepared.placements.get(kernel)), placement,
                          _separable_depth(func, chain, written_parameters(func)),
                          [int(loop.extent) for loop in chain])
        valid, least = [], None
        for knobs in candidates(task):
            if knobs.split or knobs.stage or knobs.order or knobs.unroll != 1:
                # A split tile is several iterations of a loop: never the smallest; a staged
                # one is the same tile with a copy added; a reordered or unrolled one is the
                # same tile as another program, a tuning choice for the search to measure.
                continue
            try:
                valid.append(check_candidate(task, knobs, prepared.board, env))
            except CandidateError as err:
                if knobs.tiles_per_commit == 1:
                    least = str(err)  # the last: the deepest tile, the most chunks
        if not valid:
            hopeless.append(f"{refused[kernel]}; the tuner's margin {TUNING_MARGIN} admits no "
                            f"tile of it either ({least})")
            continue
        base[kernel] = min(valid, key=lambda c: (c.batch_cost, c.knobs.tiles_per_commit))
    if hopeless:
        raise DoesNotFitError("the model does not fit the power cycle budget, tuned or not:\n  "
                              + "\n  ".join(hopeless))
    return refused, base
