"""Default schedule rule for a fused operator on a microcontroller: inline and fuse epilogues.

After ``FuseTIR`` a fused operator such as ``conv2d + add + relu`` is several blocks, each
writing a full-size intermediate buffer (the padded input, the raw convolution, the sum).
On an MCU those intermediates would cost several times the output's memory. This rule
removes them:

Step 1. Inline every injective block into its consumers (padding becomes a bounds check,
        bias and activation fold into one expression).
Step 2. Place what remains after a reduction (the epilogue) under the reduction's spatial
        loops, so the reduction's buffer shrinks to one element once compacted.
Step 3. A reduction that accumulates straight into the kernel's output gets a one-element
        local accumulator instead: the output lives in NVM, where a store per
        multiply-accumulate would cost energy, and a split reduction (see codegen/tiling.py)
        needs the running sum apart from the output.
Step 4. Hoist each reduction's initialization out of its reduction loops, so the inner
        loop carries no "first iteration?" branch.

Tiling for intermittent execution comes later; this rule only makes the operator lean.
An epilogue that cannot be placed under its reduction's loops keeps its full-size
intermediate buffer; the rule then reports a notice (:mod:`.notices`) naming the blocks.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.base import ScheduleRule
from tvm.target import Target

from .notices import UNFUSED_EPILOGUE, Notice, report

_SPATIAL = 0
_REDUCE = 2


def _try(primitive, *args) -> bool:
    """Apply a schedule primitive; report whether it was legal here."""
    try:
        primitive(*args)
    except (s_tir.schedule.ScheduleError, RuntimeError, ValueError):
        return False
    return True


class FuseEpilogue(ScheduleRule):
    """Inline injective blocks and compute epilogues at their reduction's spatial loops.

    Parameters
    ----------
    notices : list, optional
        Receives a notice for each epilogue left unfused (see :mod:`.notices`).
    """

    def __init__(self, notices: list | None = None):
        super().__init__()
        self.notices = notices

    def is_target_available(self, target: Target) -> bool:
        return target.kind.name in ("c", "llvm")

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool):
        if not isinstance(func, tirx.PrimFunc):
            return None
        sch = s_tir.Schedule(func)
        root = sch.get_sblock("root")
        # Step 1. Inline until nothing more can be inlined (each success changes the list).
        changed = True
        while changed:
            changed = False
            for block in sch.get_child_blocks(root):
                if _try(sch.compute_inline, block) or _try(sch.reverse_compute_inline, block):
                    changed = True
                    break
        # Step 2. Move each reduction's consumers under its innermost spatial loop.
        for block in sch.get_child_blocks(root):
            iter_types = [iv.iter_type for iv in sch.get(block).iter_vars]
            if _REDUCE not in iter_types:
                continue
            n_spatial = 0
            for kind in iter_types:
                if kind != _SPATIAL:
                    break
                n_spatial += 1
            loops = sch.get_loops(block)
            if n_spatial == 0 or len(loops) < n_spatial:
                continue
            consumers = sch.get_consumers(block)
            for consumer in consumers:
                if not _try(sch.reverse_compute_at, consumer, loops[n_spatial - 1]):
                    producer, epilogue = sch.get(block), sch.get(consumer)
                    name = func.attrs.get("global_symbol") if func.attrs else None
                    buffer = producer.writes[0].source
                    elements = 1
                    for extent in buffer.shape:
                        elements *= int(extent)
                    report(self.notices, Notice(
                        str(name or producer.name_hint), UNFUSED_EPILOGUE,
                        f"block {epilogue.name_hint!r} cannot run inside the loops of "
                        f"reduction {producer.name_hint!r}, so its intermediate "
                        f"{buffer.name!r} ({elements} element{'s' * (elements != 1)}) "
                        "stays whole and is written before the epilogue reads it"))
            # Step 3. Accumulate in a local element when the block writes the output.
            if not consumers:
                try:
                    write_back = sch.cache_write(block, 0, "local")
                    sch.reverse_compute_at(write_back, sch.get_loops(block)[n_spatial - 1])
                except (s_tir.schedule.ScheduleError, RuntimeError, ValueError):
                    pass
            # Step 4. Initialize before the first reduction loop.
            loops = sch.get_loops(block)
            if len(loops) > n_spatial:
                _try(sch.decompose_reduction, block, loops[n_spatial])
        return sch
