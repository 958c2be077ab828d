"""Where a run's power failures struck, for tests that must show a kernel was interrupted."""

from __future__ import annotations


def failures_inside(run, manifest: dict, kernel: str) -> int:
    """How many of ``run``'s failures struck inside ``kernel``'s tile batches: after its
    task's entry (``intm_task_<index>`` in ``run.events``) and before the next event (the
    batch's commit is the executor's, recorded as the next phase function's entry)."""
    task = next(i for i, t in enumerate(manifest["tasks"]) if t["kernel"] == kernel)
    inside = 0
    for point in run.failure_points:
        before = [name for name, count in run.events if count <= point]
        inside += bool(before) and before[-1] == f"intm_task_{task}"
    return inside
