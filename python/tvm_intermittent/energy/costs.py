"""The calibrated cost model: the work of every task and of the runtime, without QEMU.

Two kinds of facts, both measured on QEMU by ``scripts/calibrate.py`` and kept in
``energy/calibration.json`` (the one place they are written down):

* the runtime's constants (:class:`RuntimeCosts`): a boot up to the restore of the
  progress record, the restore, one commit, the executor's work per task and per batch of
  tiles, reading the inputs and writing the outputs (fixed and per byte);
* the kernel model: instructions per executed node of each kind
  (:mod:`.kernel_cost`) and per tile of the fused tile loop (:func:`tile_counts`), fitted
  on synthetic single-operator models, never on the zoo.

A kernel's NVM traffic is not fitted: its loads and stores of the arena are counted from
the TIR as the compiled firmware makes them (word stores where GCC merges byte stores, a
``memcpy`` per batch of a tiled copy: :mod:`.kernel_cost`). A tile's predicted
:class:`~.model.Work` is then its share of the kernel's executed counts plus the fused tile
loop's own counts, times the coefficients, plus its share of the executor's per-batch work
(:func:`tile_work`).

The compiler writes each task's ``cost`` (``{"tile": Work, "fixed": Work}``) and the
runtime's constants into ``model.json``; :func:`task_costs` reads them back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources

from .kernel_cost import Features, kernel_features, memcpy_accesses
from .model import Work

#: The calibration file shipped in this package.
CALIBRATION_FILE = "calibration.json"
#: Fields of :class:`RuntimeCosts` that hold a :class:`~.model.Work`.
RUNTIME_FIELDS = ("boot", "restore", "commit", "task_overhead", "tile_overhead",
                  "input_fixed", "input_per_byte", "output_fixed", "output_per_byte")


@dataclasses.dataclass(frozen=True)
class RuntimeCosts:
    """What the firmware around the kernels costs, as measured on QEMU.

    Attributes
    ----------
    boot : Work
        From the reset handler to the entry of the progress record's restore (start-up
        code, ``.data``/``.bss``, platform set-up; the SRAM scrub that models the loss of
        SRAM is not work and is not in it).
    restore : Work
        The restore function on a boot that finds a committed record (after a failure).
    commit : Work
        One commit of the progress record.
    task_overhead : Work
        The executor's work once per task.
    tile_overhead : Work
        The executor's work per call of a task function, i.e. per batch of tiles (the
        call, the task wrapper, the kernel's entry and exit), the commit not included.
    input_fixed, input_per_byte : Work
        Reading the inputs into the arena: fixed, and per input byte.
    output_fixed, output_per_byte : Work
        Writing the outputs and exiting: fixed, and per output byte.
    sources : dict
        ``field -> how it was measured``.
    """

    boot: Work
    restore: Work
    commit: Work
    task_overhead: Work
    tile_overhead: Work
    input_per_byte: Work
    output_per_byte: Work
    input_fixed: Work = Work()
    output_fixed: Work = Work()
    sources: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {f: getattr(self, f).to_dict() for f in RUNTIME_FIELDS}
        out["sources"] = dict(self.sources)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "RuntimeCosts":
        return cls(**{f: Work.from_dict(data.get(f, {})) for f in RUNTIME_FIELDS},
                   sources=dict(data.get("sources", {})))

    def input_work(self, nbytes: int) -> Work:
        return self.input_fixed + self.input_per_byte * nbytes

    def output_work(self, nbytes: int) -> Work:
        return self.output_fixed + self.output_per_byte * nbytes


def kernel_family(kernel: str | None, features: Features) -> str | None:
    """The family a kernel's calibration correction is looked up by: its name without the
    numbering TVM gives repeated kernels (``conv2d_s81`` -> ``conv2d_s``), whether it runs
    on the DSP multiply-accumulate, and the depth of its loop nest (a 1x1 and a 3x3
    convolution share a name, not a loop nest): ``conv2d_s/dsp/3``.

    A kernel with one-sided accumulators (``load_reg_cond``: a border that adds nothing
    under an ``if`` without ``else``, input zero point 0) is a family of its own, ``/z``:
    GCC keeps its accumulators on the stack across the whole nest, not only in the guarded
    taps, so the family's scale differs (the row kernel's 10x8 and 9x8 windows over eight
    channels were fitted 6 to 13 % high in the family of their two-sided twins)."""
    if not kernel:
        return None
    base = kernel.rstrip("0123456789") or kernel
    dsp = "/dsp" if features.counts.get("call:intm_smlad") or any(
        k.startswith("micro:") for k in features.counts) else ""
    regs = f"/r{features.registers}" if features.registers else ""
    one_sided = "/z" if features.counts.get("load_reg_cond") else ""
    return f"{base}{dsp}/{features.nest_depth}{regs}{one_sided}"


@dataclasses.dataclass(frozen=True)
class KernelModel:
    """Instructions per executed node of each kind (the fused tile loop's among them).

    ``coefficients`` maps the kinds of :func:`.kernel_cost.kernel_features` to
    instructions; kinds it does not name (an intrinsic no calibration model used) cost
    ``default_call`` if they are calls and nothing otherwise, and :func:`unknown_kinds`
    names them so that a caller can say so.

    ``families`` refines the shared coefficients for each kernel family
    (:func:`kernel_family`) that the calibration measured in at least two models: GCC
    compiles each family's loop nest its own way (a copy loop becomes ``memcpy``, a DSP
    loop keeps its words in registers, an epilogue per output channel dominates a narrow
    convolution), which one linear model over all kernels cannot see. A family's
    prediction is ``shared x (shared model) + its own coefficients x counts``.
    """

    coefficients: dict
    default_call: float = 0.0
    families: dict = dataclasses.field(default_factory=dict)
    #: Relative error of a family's instructions (``scripts/calibrate.py``'s
    #: ``error_spread``: the instruction-weighted RMS of the calibration residuals).
    error_spread: float = 0.0

    def shared(self, features: Features) -> float:
        """Instructions by the coefficients shared by every kernel."""
        total = 0.0
        for kind, count in features.counts.items():
            if kind in self.coefficients:
                total += self.coefficients[kind] * count
            elif kind.startswith("call:"):
                total += self.default_call * count
        return total

    def instructions(self, features: Features, family: str | None = None) -> float:
        """Predicted instructions of ``features`` (of a kernel of ``family``)."""
        shared = self.shared(features)
        own = self.families.get(family)
        if own is None:
            return shared
        return own["shared"] * shared + sum(
            own["coefficients"].get(kind, 0.0) * count
            for kind, count in features.counts.items())

    def unknown_kinds(self, features: Features) -> list[str]:
        return sorted(k for k in features.counts if k not in self.coefficients)


@dataclasses.dataclass(frozen=True)
class TaskCost:
    """Predicted work of one task of the task table.

    Attributes
    ----------
    index : int
        Position in the task table.
    kernel : str
        The task's kernel.
    tiles, tiles_per_commit : int
        From the tile plan.
    tile : Work
        One tile: its share of the kernel, the fused loop's per-tile work and its share of
        the executor's per-batch work (``tile_overhead / tiles_per_commit``).
    fixed : Work
        Once per task (the executor's ``task_overhead``).
    """

    index: int
    kernel: str
    tiles: int
    tiles_per_commit: int
    tile: Work
    fixed: Work

    @property
    def commits(self) -> int:
        return -(-self.tiles // self.tiles_per_commit)

    def work(self, runtime: RuntimeCosts | None = None) -> Work:
        """The whole task in a continuous run: its tiles, its fixed part and, given the
        runtime's costs, its commits."""
        total = self.tile * self.tiles + self.fixed
        if runtime is not None:
            total = total + runtime.commit * self.commits
        return total


@functools.lru_cache(maxsize=None)
def _calibration_text() -> str:
    return resources.files(__package__).joinpath(CALIBRATION_FILE).read_text()


def calibration(isa: str = "arm") -> dict:
    """The calibration of ``isa`` from ``calibration.json`` (a fresh copy)."""
    data = json.loads(_calibration_text())
    if isa not in data.get("isas", {}):
        raise KeyError(f"no cost calibration for ISA {isa!r} (calibrated: "
                       f"{', '.join(sorted(data.get('isas', {}))) or 'none'}); run "
                       f"scripts/calibrate.py")
    return data["isas"][isa]


def runtime_costs(isa: str = "arm") -> RuntimeCosts:
    """The runtime's measured constants on ``isa`` (see :class:`RuntimeCosts`)."""
    return RuntimeCosts.from_dict(calibration(isa)["runtime"])


def kernel_model(isa: str = "arm") -> KernelModel:
    """The fitted instructions per executed node of ``isa``."""
    fit = calibration(isa)["kernel"]
    return KernelModel(dict(fit["coefficients"]), float(fit.get("default_call", 0.0)),
                       dict(fit.get("families", {})), float(fit.get("error_spread", 0.0)))


def task_family(task: dict) -> str | None:
    """The kernel family (:func:`kernel_family`) of a task of ``model.json``."""
    cost = task.get("cost", {})
    return kernel_family(task.get("kernel"), Features(
        dict(cost.get("features", {})), nest_depth=int(cost.get("nest_depth", 0)),
        registers=int(cost.get("registers", 0))))


def model_error(manifest: dict, isa: str = "arm") -> float:
    """The relative error to expect of a model's predicted kernel instructions.

    The calibration states the error of one family's instructions (``error_spread``).
    Tasks of one family share it (GCC compiles their nests alike, so their errors have
    the same sign: kws's four pointwise convolutions were all 7 % high before the
    families were split by register count), and families err independently, so a model's
    error is ``spread x sqrt(sum of each family's instructions squared) / instructions``:
    the spread itself for a model that is one family (micro_speech), less for one whose
    work is spread over many.
    """
    spread = kernel_model(isa).error_spread
    shares: dict = {}
    for task, cost in zip(manifest.get("tasks", []), task_costs(manifest)):
        family = task_family(task)
        shares[family] = shares.get(family, 0.0) + cost.work().instructions
    total = sum(shares.values())
    if not total:
        return 0.0
    return spread * sum(v * v for v in shares.values()) ** 0.5 / total


def tile_counts(depth: int) -> dict:
    """The kinds one tile of ``depth`` fused loops adds to its kernel's executed counts:
    ``tiles``, an iteration of the fused tile loop, and ``tile_divmod``, the divisions and
    remainders that recover the loop variables from the tile index (``codegen/c_printer.py``:
    one of each per variable but the last). A kernel that is one tile (depth 0) has none."""
    if depth <= 0:
        return {}
    return {"tiles": 1.0, "tile_divmod": 2.0 * (depth - 1)}


def tile_work(func, plan, placement: dict | None = None, *, model: KernelModel | None = None,
              runtime: RuntimeCosts | None = None, features: Features | None = None,
              kernel: str | None = None) -> Work:
    """Predicted work of one tile of ``func`` cut by ``plan`` (a mean over its tiles).

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        A lowered kernel.
    plan : TilePlan
        Its tiling (``depth``, ``extent``, ``tiles_per_commit``, ``chunks``).
    placement : dict, optional
        ``parameter name -> "nvm" | "flash"`` (default: every parameter in NVM).
    model, runtime : optional
        The kernel model and runtime costs (default: the calibrated ones).
    features : Features, optional
        ``kernel_features(func, placement)``, when the caller has it already.
    kernel : str, optional
        The kernel's name in the model, for its family's correction (:class:`KernelModel`).

    Returns
    -------
    Work
        Instructions from the kernel model, NVM accesses counted from the TIR (those of a
        tiled copy loop per batch, :func:`_tiled_copies`), and the executor's per-batch
        work shared among the batch's tiles.
    """
    model = model or kernel_model()
    runtime = runtime or runtime_costs()
    features = features or kernel_features(func, placement)
    tiles = max(1, int(plan.extent))
    per_tile = features.scaled(1.0 / tiles)
    counts = dict(per_tile.counts)
    for kind, count in tile_counts(int(plan.depth)).items():
        counts[kind] = counts.get(kind, 0.0) + count
    instructions = model.instructions(dataclasses.replace(per_tile, counts=counts),
                                      kernel_family(kernel, features))
    work = Work(instructions, per_tile.nvm_loads, per_tile.nvm_stores,
                per_tile.nvm_load_bytes, per_tile.nvm_store_bytes)
    work = work + _tiled_copies(features, plan) * (1.0 / tiles)
    if getattr(plan, "chunks", 1) > 1:
        # A chunk of a split reduction passes its running sum through an NVM slot: all
        # but the first chunk of an element load it, all but the last store it.
        share = (plan.chunks - 1) / plan.chunks
        work = work + Work(0.0, share, share, 4 * share, 4 * share)
    return work + runtime.tile_overhead * (1.0 / max(1, int(plan.tiles_per_commit)))


def _tiled_copies(features: Features, plan) -> Work:
    """The NVM accesses that a copy loop cut into tiles makes beyond what
    :func:`.kernel_cost.kernel_features` counted (one ``memcpy`` from a word boundary).

    Each batch of ``tiles_per_commit`` tiles is a call of its own, so a ``memcpy`` of its
    own from where the batch starts: a batch that starts or ends inside a word copies a
    halfword and a byte there (:func:`.kernel_cost.memcpy_accesses`).
    """
    extra = Work()
    if int(plan.depth) != 1:
        return extra
    batch = max(1, int(plan.tiles_per_commit))
    for copy in features.copies:
        if not copy.outermost or copy.extent != int(plan.extent):
            continue
        batches = sum(memcpy_accesses(begin * copy.size,
                                      (min(copy.extent, begin + batch) - begin) * copy.size)
                      for begin in range(0, copy.extent, batch))
        delta = copy.runs * (batches - memcpy_accesses(0, copy.extent * copy.size))
        extra = extra + Work(0.0, delta if copy.nvm_src else 0.0,
                             delta if copy.nvm_dst else 0.0)
    return extra


def task_cost_dict(tile: Work, runtime: RuntimeCosts | None = None) -> dict:
    """``model.json``'s ``tasks[i]["cost"]`` for a task whose tile costs ``tile``."""
    runtime = runtime or runtime_costs()
    return {"tile": tile.to_dict(), "fixed": runtime.task_overhead.to_dict()}


def task_costs(manifest: dict) -> list[TaskCost]:
    """The predicted cost of every task of a compiled model, from its ``model.json``.

    Raises
    ------
    KeyError
        When a task has no ``cost`` (a project compiled before the cost model): recompile.
    """
    out = []
    for index, task in enumerate(manifest["tasks"]):
        if "cost" not in task:
            raise KeyError(f"task {index} ({task.get('kernel')}) of model "
                           f"{manifest.get('name')!r} has no predicted cost; the project "
                           "predates the cost model, recompile it")
        cost = task["cost"]
        out.append(TaskCost(index, task["kernel"], int(task["tiles"]),
                            int(task["tiles_per_commit"]), Work.from_dict(cost["tile"]),
                            Work.from_dict(cost["fixed"])))
    return out
