"""``tvm_intermittent.build``: the compiler driver, shaped like ``tvm.compile``.

.. code-block:: python

    import tvm_intermittent as ti

    artifact = ti.build("kws.tflite", target="intermittent/qemu-an386")
    artifact.export("kws_project")           # a C project: make && make run
    result = artifact.run([features])        # on QEMU, exact instruction counts
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import tvm

from .board import Board
from .codegen.address_space import address_space_problems
from .codegen.c_printer import stack_scratch_bytes, written_parameters
from .codegen.graph import extract_graph
from .codegen.memory_plan import plan_memory
from .codegen.model_source import ModelSources, TensorInfo, emit_model_sources
from .codegen.idempotence import IdempotenceError, check_idempotence
from .codegen.tiling import (TilePlan, TilingPolicy, commit_limit, plan_tiles,
                             smallest_tile_cost)
from .errors import DoesNotFitError, ModelError
from .target import board_of
from .transform import intermittent_pipeline, lower_prim_func
from .transform.depthwise_kernels import PAIRS_ATTR
from .transform.notices import ONE_ROW_TILES, SPLIT_REDUCTION, Notice, report
from .transform.shrink import (DENSE_ONE_UNIT, DEPTHWISE_BLOCKS, VARIANT_ATTR, Shrink,
                               kernel_key)

PROJECT_MANIFEST = "model.json"


@dataclasses.dataclass
class Artifact:
    """A compiled model: generated C sources plus what is needed to export and run them."""

    name: str
    board: Board
    sources: ModelSources
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    compile_seconds: float
    source_format: str | None = None
    source_model: bytes | None = dataclasses.field(default=None, repr=False)
    tiles: dict = dataclasses.field(default_factory=dict)
    power_cycle_budget: int = 0
    #: Kernel of each task of the task table, in execution order.
    tasks: list = dataclasses.field(default_factory=list)
    #: Operators on a slower or less exact path (:class:`~.transform.notices.Notice`).
    notices: list = dataclasses.field(default_factory=list)
    #: Farads of the capacitor the tiles were sized for (the power cycle budget's).
    capacitor_f: float | None = None
    #: Multiply-accumulates of each kernel that carries them (the per-operator profile's).
    macs: dict = dataclasses.field(default_factory=dict)
    #: The power environment the tiles were sized for (a ``sim.environments`` preset).
    power_env: object = None
    #: Predicted work of one tile of each kernel (:func:`~.energy.costs.tile_work`).
    tile_costs: dict = dataclasses.field(default_factory=dict)
    #: Executed counts of each whole kernel (:func:`~.energy.kernel_cost.kernel_features`).
    features: dict = dataclasses.field(default_factory=dict)
    #: The knobs the tiles were sized with.
    tiling: TilingPolicy = dataclasses.field(default_factory=TilingPolicy)
    #: ``kernel -> [why its predicted cost is less exact]`` (:func:`_cost_caveats`).
    cost_caveats: dict = dataclasses.field(default_factory=dict)
    #: Further facts for ``model.json`` by key (``compile --deadline`` records its choice).
    records: dict = dataclasses.field(default_factory=dict, kw_only=True)

    def manifest(self) -> dict:
        """What ``model.json`` records: the tensors and the facts of the build.

        Each task's ``cost`` is the cost model's prediction (:mod:`.energy.costs`): ``tile``,
        the work of one tile, ``fixed``, the work once per task, and ``features``, the
        executed counts of its whole kernel; ``runtime_costs`` are the runtime's measured
        constants the tiles were sized with.
        """
        from .energy.costs import runtime_costs, task_cost_dict  # pylint: disable=C0415

        runtime = runtime_costs()
        return {
            "name": self.name,
            "board": self.board.name,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "arena_bytes": self.sources.arena_bytes,
            "weight_bytes": self.sources.weight_bytes,
            "kernel_static_scratch_bytes": self.sources.kernel_static_scratch_bytes,
            "compile_seconds": round(self.compile_seconds, 3),
            "source_format": self.source_format,
            "model_hash": f"0x{self.sources.model_hash:08x}",
            "power_cycle_budget": self.power_cycle_budget,
            "capacitor_f": self.capacitor_f or self.board.capacitor_f,
            "power_env": self.power_env.name if self.power_env is not None else None,
            "tiles": {k: dataclasses.asdict(t) for k, t in sorted(self.tiles.items())},
            "tasks": [{"kernel": k, "tiles": self.tiles[k].extent,
                       "tiles_per_commit": self.tiles[k].tiles_per_commit,
                       "commits": self.tiles[k].commits, "macs": self.macs.get(k, 0),
                       "cost": {**task_cost_dict(self.tile_costs[k], runtime),
                                "features": _rounded(self.features[k].counts),
                                "nest_depth": self.features[k].nest_depth,
                                "registers": self.features[k].registers,
                                "estimated": self.cost_caveats.get(k, [])}}
                      for k in self.tasks],
            "tiling": self.tiling.to_dict(),
            "runtime_costs": runtime.to_dict(),
            "board_profile": self.board.to_dict(),
            "notices": [n.to_dict() for n in self.notices],
            **self.records,
        }

    def export(self, directory, overwrite: bool = False) -> Path:
        """Write the C project (model, runtime, board support, Makefile) to ``directory``.

        The project is first written to a temporary sibling directory and renamed into
        place, so an error never leaves a half-written project behind.
        """
        from .codegen.project_files import copy_support_files  # pylint: disable=C0415

        target = Path(directory).resolve()
        if target.exists() and not overwrite:
            if any(target.iterdir()):
                raise ModelError(
                    f"output directory {str(target)!r} exists and is not empty; "
                    "choose another one or pass overwrite=True (CLI: --force)"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for rel, text in self.sources.files.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            # The manifest first: the support files read its tensors (the MSP430 mailbox).
            (staging / PROJECT_MANIFEST).write_text(json.dumps(self.manifest(), indent=2) + "\n")
            copy_support_files(staging, self.board, model_name=self.name)
            if self.source_model is not None and self.source_format:
                (staging / f"original.{self.source_format}").write_bytes(self.source_model)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def run(self, inputs, kind: str | None = None, **kwargs):
        """Export to a temporary directory and run there; see :func:`tvm_intermittent.sim.run`."""
        from . import sim  # pylint: disable=import-outside-toplevel

        with tempfile.TemporaryDirectory(prefix="intm-run-") as tmp:
            project = self.export(Path(tmp) / "project")
            return sim.run(project, inputs, kind=kind, **kwargs)


def build(mod, target="intermittent/qemu-an386", *, board=None, tuning_log=None,
          name: str | None = None, shape_dict: dict | None = None,
          capacitor_f: float | None = None, int8_only: bool = False,
          power_env=None, tiling: TilingPolicy | None = None) -> Artifact:
    """Compile a model to a plain-C project for an intermittently powered microcontroller.

    Parameters
    ----------
    mod : tvm.IRModule, str, os.PathLike or onnx.ModelProto
        A Relax module, or a model file (``.onnx``, ``.tflite``) or ONNX proto to import.
    target : str or tvm.target.Target
        An ``intermittent/<board>`` tag (see ``tvm-intermittent boards``).
    board : str or Board, optional
        Overrides the board the target names.
    tuning_log : str or os.PathLike, optional
        A tuning database (the directory ``tvm-intermittent tune --log`` writes): each
        kernel takes the best of its records that fits this board and power environment
        (:func:`tvm_intermittent.tuning.apply_log`); a kernel without one keeps the
        analytic tiling. The artifact's ``notices`` name both kinds, and ``model.json``'s
        ``tuning`` records which operators are tuned and from which log.
    name : str, optional
        Model name for comments and reports.
    shape_dict : dict, optional
        Fixed input shapes for models with symbolic dimensions.
    capacitor_f : float, optional
        Capacitor the tiles are sized for (default: the board profile's).
    power_env : str or tvm_intermittent.sim.environments.PowerEnvironment, optional
        Size the tiles for the least budget a boot gets in this power environment (its
        capacitor, voltages and the harvest while computing) instead of ``capacitor_f``;
        ``"continuous"``: the tiles for the board's own capacitor, and a tuning log's records
        ranked for continuous power.
    int8_only : bool
        Refuse (:class:`~.errors.ModelError`) a model that would keep any operator in float
        or any epilogue unfused, naming them and why; by default such a model compiles and
        the artifact's ``notices`` (also logged, and in ``model.json``) say so.
    tiling : TilingPolicy, optional
        The tiler's margin and batch scale (default ``TilingPolicy()``), recorded in
        ``model.json``.

    Returns
    -------
    Artifact
        The generated sources; ``.export(dir)`` writes the C project.
    """
    prepared = prepare(mod, target, board=board, name=name, shape_dict=shape_dict,
                       capacitor_f=capacitor_f, int8_only=int8_only, power_env=power_env,
                       tiling=tiling)
    if tuning_log is None:
        return assemble(prepared)
    from .tuning.apply import apply_log  # pylint: disable=import-outside-toplevel

    applied = apply_log(prepared, tuning_log)
    return assemble(prepared, applied.overrides, notices=applied.notices,
                    records={"tuning": applied.to_dict()})


@dataclasses.dataclass
class Prepared:
    """A model imported, fused and lowered for a board: what every tiling of it shares.

    :func:`build` is :func:`prepare` then :func:`assemble`; the tuner prepares a model once
    and assembles it once per candidate tiling.
    """

    imported: object
    name: str
    board: Board
    graph: object
    lowered: dict
    memory: object
    notices: list
    budget: int
    tile_budget: int
    capacitor_f: float | None
    power_env: object
    tiling: TilingPolicy
    placements: dict
    started: float
    #: Built for continuous power (``power_env="continuous"``): what a tuning log ranks for.
    continuous: bool = False
    int8_only: bool = False
    #: What the lowering was asked for (the rule's finer kernels) and what it offered.
    requests: "Requests" = None
    #: ``frozenset of (kernel, variant) -> Prepared``: lowerings with kernel variants chosen
    #: (:func:`.tuning.variants.relowered`), made once each.
    variant_lowerings: dict = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class Requests:
    """The finer kernels the analytic rule had the lowering build, and the finer forms the
    last lowering offered: what a kernel variant (:mod:`.tuning.variants`) flips.

    Attributes
    ----------
    unpaired : dict
        ``PAIRS_ATTR key -> reason``: depthwise kernels built one output row per tile.
    paired_keys : dict
        ``kernel -> PAIRS_ATTR key`` of those kernels (the paired kernel's key).
    shrunk : dict
        ``kernel_key -> (kernel, Shrink, Offer)``: kernels built finer
        (:mod:`.transform.shrink`).
    offers : dict
        ``kernel_key -> Offer``: kernels of the last lowering built the default way that
        have a finer form.
    """

    unpaired: dict
    paired_keys: dict
    shrunk: dict
    offers: dict


def prepare(mod, target="intermittent/qemu-an386", *, board=None, name: str | None = None,
            shape_dict: dict | None = None, capacitor_f: float | None = None,
            int8_only: bool = False, power_env=None,
            tiling: TilingPolicy | None = None) -> Prepared:
    """Import, fuse and lower ``mod`` and size the power cycle (the parameters of
    :func:`build`); no tiling yet."""
    from .frontend import ImportedModel, load_model  # pylint: disable=import-outside-toplevel

    started = time.perf_counter()
    the_board = board_of(target, board)
    if isinstance(mod, tvm.IRModule):
        imported = ImportedModel(mod, name or "model", "relax", *_relax_io(mod))
    elif isinstance(mod, ImportedModel):
        imported = mod
    else:
        imported = load_model(mod, shape_dict)
    tvm_target = tvm.target.Target("intermittent/" + the_board.name)
    if int8_only:
        _check_quantized(imported.mod)
    from .sim import environments  # pylint: disable=import-outside-toplevel

    continuous = environments.is_continuous(power_env)
    if continuous:
        power_env = None  # no failures to size for: the board's own capacitor
    if power_env is not None:
        if capacitor_f is not None:
            raise ModelError("give either capacitor_f or power_env: the environment sets the "
                             "capacitor")
        if isinstance(power_env, str):
            power_env = environments.get(power_env)
        capacitor_f = power_env.for_board(the_board).capacitor_f
        budget, tile_budget = (power_env.power_cycle_budget(the_board),
                               power_env.tile_budget(the_board))
    else:
        budget, tile_budget = (the_board.power_cycle_budget(capacitor_f),
                               the_board.tile_budget(capacitor_f))
    # In the tiler's Cortex-M4 instructions (a 16-bit MSP430 needs several per one of those).
    tiling = tiling or TilingPolicy()
    # Each kernel whose smallest tile does not fit one charge is built again finer, in up
    # to three steps: depthwise pairs of rows -> one row -> channel blocks of one pixel, and
    # blocked fully connected units -> one unit (whose reduction the tiler then splits).
    notices, graph, lowered, placements, offers = _lower(imported.mod, tvm_target, int8_only)
    unpaired = _unpair_refused(lowered, the_board, tile_budget, tiling, placements)
    paired_keys = {kernel: str(lowered[kernel].attrs[PAIRS_ATTR]) for kernel in unpaired}
    keys = {paired_keys[kernel]: reason for kernel, reason in unpaired.items()}
    if unpaired:
        notices, graph, lowered, placements, offers = _lower(imported.mod, tvm_target,
                                                             int8_only, keys)
    fallbacks = [Notice(kernel, ONE_ROW_TILES, reason) for kernel, reason in unpaired.items()]
    shrunk = _shrink_refused(graph, lowered, offers, the_board, tile_budget, tiling, placements)
    while shrunk:
        notices, graph, lowered, placements, offers = _lower(
            imported.mod, tvm_target, int8_only, keys,
            {key: shrink for key, (_, shrink, _) in shrunk.items()})
        finer = _finer_blocks(shrunk, lowered, the_board, tile_budget, tiling, placements)
        if finer is None:
            break
        shrunk = finer
    fallbacks += [Notice(kernel, shrink.kind, shrink.reason)
                  for kernel, shrink, _ in shrunk.values()]
    for notice in fallbacks:
        report(notices, notice)
    return Prepared(imported, name or imported.name, the_board, graph, lowered,
                    plan_memory(graph), notices, budget, tile_budget, capacitor_f, power_env,
                    tiling, placements, started, continuous, int8_only,
                    Requests(keys, paired_keys, shrunk, offers))


def _lower(mod, tvm_target, int8_only: bool, unpaired: dict | None = None,
           shrunk: dict | None = None):
    """The pipeline, the graph and each scheduled kernel lowered: ``(notices, graph,
    lowered, placements, offers)``; ``unpaired``, ``shrunk`` and ``offers`` as for
    :func:`.transform.intermittent_pipeline`."""
    notices, offers = [], {}
    relax_mod = intermittent_pipeline(tvm_target, notices, unpaired, shrunk, offers)(mod)
    if int8_only and notices:
        raise ModelError("int8_only (--int8-only): the model is not integer-only:\n  "
                         + "\n  ".join(str(n) for n in notices)
                         + "\ncompile without --int8-only to accept these operators")
    graph = extract_graph(relax_mod, notices)
    lowered = {kernel: lower_prim_func(func, kernel) for kernel, func in graph.kernels.items()
               if any(step.kernel == kernel for step in graph.steps)}
    return notices, graph, lowered, _placements(graph, lowered), offers


def _unpair_refused(lowered: dict, board: Board, budget: int, policy: TilingPolicy,
                    placements: dict) -> dict[str, str]:
    """``kernel -> reason`` for each depthwise kernel in vertical pairs (``PAIRS_ATTR``) that
    the tiler refuses for ``budget``: pairs are the faster kernel but double its smallest
    tile, so where that tile does not fit one charge the kernel is built again one output
    row per tile (half the tile) instead of refusing the model. The test is the tiler's own
    refusal (:func:`plan_tiles`), so a capacitor that fits the pairs keeps them; a kernel
    whose single rows do not fit either is then refused by :func:`assemble` as before.
    """
    unpaired = {}
    for kernel, func in lowered.items():
        if func.attrs is None or PAIRS_ATTR not in func.attrs:
            continue
        written = written_parameters(func)
        try:
            plan_tiles(func, kernel, written, budget, board.name, board=board, policy=policy,
                       placement=placements.get(kernel))
            continue
        except IdempotenceError:
            continue  # not a question of size: assemble refuses it with the reason
        except DoesNotFitError:
            pass
        needed, target = smallest_tile_cost(func, kernel, written, budget, board=board,
                                            policy=policy, placement=placements.get(kernel))
        unpaired[kernel] = (
            f"its paired tile (one column of two output rows) needs about {needed:,} "
            f"instructions, one charge of board {board.name} pays {budget:,} "
            f"({commit_limit(target)}): built one output row per tile instead, the slower "
            "kernel with half the tile; a larger capacitor keeps the pairs")
    return unpaired


def _refused(func, kernel: str, board: Board, budget: int, policy: TilingPolicy,
             placements: dict) -> tuple[int, int] | None:
    """``(needed, target)`` when the tiler refuses ``kernel`` for its size (its smallest
    tile's predicted cost and one commit's most), None when it fits or is refused for
    another reason (:func:`assemble` then says which)."""
    written = written_parameters(func)
    needed, target = smallest_tile_cost(func, kernel, written, budget, board=board,
                                        policy=policy, placement=placements.get(kernel))
    if needed <= target:  # the smallest tile fits: so does the tiler's plan (quickly said)
        return None
    try:
        plan_tiles(func, kernel, written, budget, board.name, board=board, policy=policy,
                   placement=placements.get(kernel))
        return None
    except IdempotenceError:
        return None
    except DoesNotFitError:
        return needed, target


def _shrink_refused(graph, lowered: dict, offers: dict, board: Board, budget: int,
                    policy: TilingPolicy, placements: dict) -> dict[str, tuple]:
    """``default kernel key -> (kernel, Shrink, Offer)`` for each kernel with a finer form
    (:mod:`.transform.shrink`) whose smallest tile the tiler refuses for ``budget``.

    The test is the tiler's own refusal, as in :func:`_unpair_refused`: a capacitor that
    fits the default tile keeps the default kernel (its C does not change). A fully
    connected kernel is built one output unit per tile; where one unit does not fit either,
    the tiler then splits its reduction (``codegen.tiling._split_reduction``). A depthwise
    kernel is cut into the largest block of channel quads that the smallest tile's cost,
    shared evenly by the quads of its pixel, predicts to fit within :data:`BLOCK_SHARE` of
    one commit's most (the rest for the per-tile work a block does not shrink); a block the
    tiler still refuses is halved again (:func:`_finer_blocks`).
    """
    shrunk = {}
    for kernel, func in lowered.items():
        key = kernel_key(graph.kernels[kernel])
        offer = offers.get(key)
        missed = None if offer is None else _refused(func, kernel, board, budget, policy,
                                                     placements)
        if missed is None:
            continue
        needed, target = missed
        miss = (f"needs about {needed:,} instructions, one charge of board {board.name} pays "
                f"{budget:,} ({commit_limit(target)})")
        if offer.kind == DENSE_ONE_UNIT:
            shrunk[key] = (kernel, Shrink(
                DENSE_ONE_UNIT,
                f"its smallest tile ({offer.units} output units) {miss}: built one output unit "
                "per tile instead, the slower kernel, whose reduction the tiler splits into "
                "chunks with partial sums in NVM where one unit does not fit either; a larger "
                "capacitor keeps the blocked kernel", miss=miss), offer)
            continue
        fits = [b for b in range(1, offer.units) if offer.units % b == 0
                and needed * b <= BLOCK_SHARE * target * offer.units]
        shrunk[key] = (kernel, _blocks_shrink(max(fits, default=1), offer.units, miss), offer)
    return shrunk


#: Share of one commit's most that a depthwise channel block's predicted share of its
#: pixel's cost may take (see :func:`_shrink_refused`).
BLOCK_SHARE = 0.8


def _blocks_shrink(block: int, quads: int, miss: str) -> Shrink:
    return Shrink(DEPTHWISE_BLOCKS,
                  f"its smallest tile (one output pixel, {quads * 4} channels) {miss}: built "
                  f"in blocks of {block * 4} channels of one pixel per tile instead, the "
                  "slower kernel; a larger capacitor keeps whole pixels", block, miss)


def _finer_blocks(shrunk: dict, lowered: dict, board: Board, budget: int,
                  policy: TilingPolicy, placements: dict) -> dict | None:
    """``shrunk`` with each depthwise block the tiler still refuses halved to the next
    divisor of its quads, or None when none is refused (or none can be halved): the
    estimate of :func:`_shrink_refused` is the cost shared evenly, which misses the
    per-tile work a block does not shrink."""
    finer, changed = dict(shrunk), False
    for key, (kernel, shrink, offer) in shrunk.items():
        if shrink.kind != DEPTHWISE_BLOCKS or shrink.block_quads == 1:
            continue
        missed = _refused(lowered[kernel], kernel, board, budget, policy, placements)
        if missed is None:
            continue
        block = max(b for b in range(1, shrink.block_quads) if offer.units % b == 0)
        finer[key] = (kernel, _blocks_shrink(block, offer.units, shrink.miss), offer)
        changed = True
    return finer if changed else None


def assemble(prepared: Prepared, overrides: dict | None = None, *, notices=(),
             records: dict | None = None) -> Artifact:
    """Tile every kernel of ``prepared`` and generate the sources.

    Parameters
    ----------
    overrides : dict, optional
        ``kernel -> (tiled PrimFunc, TilePlan)``: kernels cut by a tuned plan instead of the
        analytic rule (the function is the kernel as the plan cuts it, a split loop
        included); each plan is checked for idempotence here again. A function that carries
        ``intermittent.variant`` (a tuned kernel variant, :mod:`.tuning.variants`) has the
        model lowered again with that variant chosen, so its constants are its own.
    notices : sequence of Notice
        Added to the artifact's notices (what the tuning log did).
    records : dict, optional
        Further facts for ``model.json`` by key.
    """
    overrides = overrides or {}
    chosen = {k: int(func.attrs[VARIANT_ATTR]) for k, (func, _) in overrides.items()
              if func.attrs is not None and VARIANT_ATTR in func.attrs}
    if chosen:  # a kernel variant is another lowering: its constants are laid out for it
        from .tuning.variants import relowered  # pylint: disable=import-outside-toplevel

        prepared = relowered(prepared, chosen)
    lowered = {k: overrides[k][0] if k in overrides else f for k, f in prepared.lowered.items()}
    tiles, scratch, tile_costs, features = _plan_all_tiles(
        lowered, prepared.board, prepared.tile_budget, prepared.tiling, prepared.placements,
        {k: plan for k, (_, plan) in overrides.items()})
    split = _split_notices(prepared, lowered, tiles, overrides)
    graph, imported = prepared.graph, prepared.imported
    inputs = _match_infos(imported.inputs, graph, graph.inputs)
    outputs = _match_infos(imported.outputs, graph, graph.outputs)
    sources = emit_model_sources(graph, prepared.memory, lowered, prepared.name, inputs,
                                 outputs, prepared.board.name, tiles)
    _check_memory(sources, scratch, prepared.board)
    return Artifact(prepared.name, prepared.board, sources, inputs, outputs,
                    time.perf_counter() - prepared.started, imported.format, imported.source,
                    tiles, prepared.budget, [step.kernel for step in graph.steps],
                    [*prepared.notices, *split, *notices], prepared.capacitor_f,
                    _kernel_macs(graph.kernels),
                    prepared.power_env, tile_costs, features, prepared.tiling,
                    _cost_caveats(features), records=dict(records or {}))


def _split_notices(prepared: Prepared, lowered: dict, tiles: dict,
                   overrides: dict) -> list[Notice]:
    """A notice for each kernel whose reduction the analytic rule split into chunks: the
    slower path (a commit per chunk, the running sum through NVM), taken because one output
    element does not fit one commit. A tuned plan that splits says so in its own record."""
    found = []
    for kernel, plan in tiles.items():
        if plan.chunks <= 1 or kernel in overrides:
            continue
        func = lowered[kernel]
        needed, target = smallest_tile_cost(
            func, kernel, written_parameters(func), prepared.tile_budget, board=prepared.board,
            policy=prepared.tiling, placement=prepared.placements.get(kernel))
        found.append(Notice(kernel, SPLIT_REDUCTION, (
            f"one output element needs about {needed:,} instructions, one charge of board "
            f"{prepared.board.name} pays {prepared.tile_budget:,} ({commit_limit(target)}): "
            f"each element's reduction runs in {plan.chunks} chunks of "
            f"{plan.chunk_size} iterations, the running sum through NVM, one commit per "
            "chunk; a larger capacitor keeps whole elements")))
    for notice in found:
        report(None, notice)
    return found


def _cost_caveats(features: dict) -> dict[str, list[str]]:
    """Where a kernel's predicted cost is less exact than its executed counts: guards that
    read memory (taken as true half the time) and kinds no calibration model had (costed at
    the median fitted call, or nothing). Recorded in ``model.json`` and logged."""
    from .energy.costs import kernel_model  # pylint: disable=import-outside-toplevel
    from .transform.notices import LOGGER  # pylint: disable=import-outside-toplevel

    model = kernel_model()
    caveats = {}
    for kernel, found in sorted(features.items()):
        why = []
        if found.estimated_guards:
            why.append(f"{found.estimated_guards} guard(s) read memory and count as taken "
                       "half the time")
        why.extend(found.nvm_caveats)
        unknown = model.unknown_kinds(found)
        if unknown:
            why.append(f"kinds no calibration model had: {', '.join(unknown)}; recalibrate "
                       "with a model that has them (scripts/calibrate.py)")
        if why:
            caveats[kernel] = why
            LOGGER.info("predicted cost of %s is estimated: %s", kernel, "; ".join(why))
    return caveats


def _rounded(counts: dict) -> dict:
    return {k: round(v, 3) for k, v in sorted(counts.items())}


def _placements(graph, lowered: dict) -> dict[str, dict]:
    """``kernel -> {parameter: "flash" | "nvm"}``: constant weights stay in flash, every other
    tensor is in the NVM arena (from the first step that calls the kernel)."""
    out = {}
    for step in graph.steps:
        if step.kernel in out or step.kernel not in lowered:
            continue
        names = step.inputs + step.outputs
        out[step.kernel] = {
            param.name: "flash" if graph.tensors[name].kind == "weight" else "nvm"
            for param, name in zip(lowered[step.kernel].params, names)}
    return out


def _kernel_macs(kernels: dict) -> dict[str, int]:
    """``kernel -> MACs`` for the kernels whose builder counted them (convolutions, dense)."""
    from .transform.integer_kernels import MACS_ATTR  # pylint: disable=C0415

    return {name: int(func.attrs[MACS_ATTR]) for name, func in kernels.items()
            if func.attrs is not None and MACS_ATTR in func.attrs}


def _check_quantized(mod) -> None:
    """``int8_only`` on a float model: nothing to make integer, so say that."""
    from .transform.quantized_to_integer import is_quantized  # pylint: disable=C0415

    if not any(is_quantized(f) for _, f in mod.functions_items()
               if isinstance(f, tvm.relax.Function)):
        raise ModelError("int8_only (--int8-only): the model is a float model (no quantize "
                         "or dequantize operators); quantize it first (e.g. "
                         "onnxruntime.quantization or the TFLite converter's int8 mode)")


#: SRAM the firmware needs besides kernel scratch: the stack reserve of the project's
#: Makefile (STACK_BYTES) and the runtime's own variables.
STACK_RESERVE_BYTES = 1024
RUNTIME_SRAM_BYTES = 256


def _plan_all_tiles(lowered: dict, board: Board, budget: int, policy: TilingPolicy,
                    placements: dict, given: dict | None = None):
    """Tile every kernel; report every operator that does not fit a power cycle at once.

    ``given`` maps kernels to the plans to take instead of the analytic rule's (checked for
    idempotence again). Returns the tile plans, each kernel's stack scratch bytes (its
    static scratch arrays are in ``ModelSources.kernel_static_scratch_bytes`` with every
    other kernel's), the predicted work of one tile of each kernel and each kernel's
    executed counts.
    """
    from .energy.costs import tile_work  # pylint: disable=import-outside-toplevel
    from .energy.kernel_cost import kernel_features  # pylint: disable=import-outside-toplevel

    tiles, scratch, costs, features, problems = {}, {}, {}, {}, []
    for kernel, func in lowered.items():
        scratch[kernel] = stack_scratch_bytes(func, kernel)
        written = written_parameters(func)
        placement = placements.get(kernel)
        features[kernel] = kernel_features(func, placement)
        try:
            if given and kernel in given:
                check_idempotence(func, kernel, given[kernel])
                tiles[kernel] = given[kernel]
            else:
                tiles[kernel] = plan_tiles(func, kernel, written, budget, board.name,
                                           board=board, policy=policy, placement=placement,
                                           features=features[kernel])
        except DoesNotFitError as err:
            problems.append(str(err))
            continue
        costs[kernel] = tile_work(func, tiles[kernel], placement, features=features[kernel],
                                  kernel=kernel)
    if problems:
        raise DoesNotFitError("the model does not fit the power cycle budget:\n  "
                              + "\n  ".join(problems))
    return tiles, scratch, costs, features


def _check_memory(sources: ModelSources, scratch: dict[str, int], board: Board) -> None:
    """Refuse a model whose arena exceeds NVM, or an operator whose working set (the stack
    reserve, the runtime's variables and its scratch buffers) exceeds SRAM; list them all."""
    problems = address_space_problems(sources.weight_bytes, sources.arena_bytes, board)
    if sources.arena_bytes > board.nvm_bytes and not problems:
        problems.append(f"the activations need {sources.arena_bytes:,} bytes of NVM, board "
                        f"{board.name} has {board.nvm_bytes:,}")
    base = STACK_RESERVE_BYTES + RUNTIME_SRAM_BYTES + sources.kernel_static_scratch_bytes
    for kernel, own in sorted(scratch.items()):
        need = base + own
        if need > board.sram_bytes:
            problems.append(
                f"operator {kernel} needs {need:,} bytes of SRAM ({STACK_RESERVE_BYTES} stack "
                f"reserve, {RUNTIME_SRAM_BYTES} runtime, {sources.kernel_static_scratch_bytes:,} "
                f"static kernel scratch, {own:,} of its own stack arrays), board {board.name} has "
                f"{board.sram_bytes:,}")
    if problems:
        raise DoesNotFitError("the model does not fit:\n  " + "\n  ".join(problems)
                              + "\nchoose a board with more memory (tvm-intermittent boards)")


def _relax_io(mod) -> tuple[list[TensorInfo], list[TensorInfo]]:
    main = mod["main"]
    inputs = [TensorInfo(p.name, str(p.ty.dtype), tuple(int(d) for d in p.ty.shape.values))
              for p in main.params]
    return inputs, []


def _match_infos(infos: list[TensorInfo], graph, names: list[str]) -> list[TensorInfo]:
    """Descriptors for the graph's tensors: the file's names and quantization, our shapes."""
    out = []
    for i, name in enumerate(names):
        tensor = graph.tensors[name]
        info = infos[i] if i < len(infos) else TensorInfo(name, tensor.dtype, tensor.shape)
        if info.dtype != tensor.dtype:
            raise ModelError(f"tensor {info.name!r}: the file says {info.dtype}, the compiled "
                             f"model has {tensor.dtype}")
        out.append(dataclasses.replace(info, shape=tuple(tensor.shape)))
    return out
