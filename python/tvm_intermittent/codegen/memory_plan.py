"""Static memory plan: one arena for every non-constant tensor, laid out by liveness.

Each tensor lives from the step that writes it (inputs: from the start) to the last step
that reads it (outputs: to the end). Two tensors may share bytes only if their lifetimes do
not overlap. A kernel's output never overlaps its inputs, because both are live at that
step, so kernels can keep their ``restrict`` pointers.

A view (a reshape's result, see :mod:`.graph`) has no bytes of its own: it gets its root
tensor's placement, and the root lives as long as any of its views is read.

The layout is the greedy "largest first, lowest fitting offset" heuristic, which is simple,
deterministic and within a few percent of optimal on chain-like networks.
"""

from __future__ import annotations

import dataclasses

from .graph import Graph, view_root

ALIGNMENT = 8


@dataclasses.dataclass(frozen=True)
class Placement:
    offset: int
    size: int
    first: int
    last: int


@dataclasses.dataclass
class MemoryPlan:
    placements: dict[str, Placement]
    arena_bytes: int
    views: frozenset[str] = frozenset()  # placed at their root's offset

    @property
    def naive_bytes(self) -> int:
        """What the arena would need without sharing (for reports)."""
        return sum(_align(p.size) for name, p in self.placements.items()
                   if name not in self.views)


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """(first step, last step) during which each non-weight tensor that owns its bytes must
    be kept; a read or an output of a view counts for its root."""
    end = len(graph.steps)
    span: dict[str, list[int]] = {name: [-1, -1] for name in graph.inputs}
    for i, step in enumerate(graph.steps):
        for name in step.outputs:
            span.setdefault(name, [i, i])
        for name in step.inputs:
            if graph.tensors[name].kind != "weight":
                root = view_root(graph.tensors, name)
                span[root][1] = max(span[root][1], i)
    for name in graph.outputs:
        span[view_root(graph.tensors, name)][1] = end
    return {name: (a, b) for name, (a, b) in span.items()}


def plan_memory(graph: Graph) -> MemoryPlan:
    """Assign an arena offset to every input, intermediate and output tensor."""
    live = lifetimes(graph)
    order = sorted(live, key=lambda n: (-graph.tensors[n].nbytes, live[n][0], n))
    placed: dict[str, Placement] = {}
    for name in order:
        size = graph.tensors[name].nbytes
        first, last = live[name]
        conflicts = sorted(
            (p.offset, p.offset + _align(p.size))
            for p in placed.values()
            if not (p.last < first or last < p.first)
        )
        offset = 0
        for lo, hi in conflicts:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed[name] = Placement(offset, size, first, last)
    arena = max((p.offset + _align(p.size) for p in placed.values()), default=0)
    views = frozenset(name for name, t in graph.tensors.items() if t.view_of is not None)
    for name in views:
        placed[name] = placed[view_root(graph.tensors, name)]
    return MemoryPlan(placed, arena, views)
