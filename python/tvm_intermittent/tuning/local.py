"""MetaSchedule's builder and runner for tiling candidates: firmware built and run on QEMU.

:class:`CandidateBuilder` turns a scheduled workload (a candidate's trace applied) into the
firmware of the whole model with that kernel cut by the candidate and every other kernel by
its default plan (the analytic rule's, or the tuner's smallest tile where the rule refuses
it, :class:`.workload.ModelTasks`), exported with the measurement spec beside it
(:mod:`.measure`); it refuses a candidate that breaks a hard constraint
(:mod:`.constraints`) with the reason as its build error, so the candidate is never measured.
:class:`QemuRunner` runs artifacts with :func:`.measure.measure_artifact` on ``workers``
threads: each measurement is a ``make`` and QEMU child process, so threads run them in parallel.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ..errors import IntermittentError
from .constraints import check_candidate
from .knobs import CandidateError, knobs_of
from .measure import PROJECT_DIR, measure_artifact, write_measure_spec


def candidate_dir(root: Path, kernel: str, knobs) -> Path:
    digest = hashlib.sha1(json.dumps(knobs.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return Path(root) / f"{kernel}-{digest}"


@derived_object
class CandidateBuilder(ms.builder.PyBuilder):
    """Builds candidates of ``model``'s kernels into artifact directories under ``root``.

    Parameters
    ----------
    model : ModelTasks
    board : Board
    environment : TuningEnvironment
    inputs : list of numpy.ndarray
        The inference every candidate is measured on.
    root : str or Path
        Where the artifact directories go.

    Attributes
    ----------
    cap : MeasurementCap or None
        Where each candidate's run under failures is stopped (written into its
        ``measure.json``, so a remote server stops it there too; None:
        :data:`.measure.DEFAULT_CAP`).
    timeout : float
        Seconds each of a candidate's runs may take at most; the tuner lowers it from the
        default build's measured wall time (:meth:`.search.Tuner.run`).
    """

    def __init__(self, model, board, environment, inputs, root):
        super().__init__()
        self.model, self.board, self.environment = model, board, environment
        self.inputs, self.root = list(inputs), Path(root)
        self.cap = None
        self.timeout = 600.0

    def build_one(self, mod) -> str:
        """Build the candidate ``mod`` (a scheduled workload); its artifact directory."""
        from ..builder import assemble  # pylint: disable=import-outside-toplevel

        task = self.model.task_of(mod)
        knobs = knobs_of(mod)
        candidate = check_candidate(task, knobs, self.board, self.environment,
                                    static_scratch=self.model.static_scratch)
        artifact = assemble(self.model.prepared,
                            self.model.plans({task.kernel: (candidate.func, candidate.plan)}))
        directory = candidate_dir(self.root, task.kernel, knobs)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        artifact.export(directory / PROJECT_DIR)
        write_measure_spec(directory, board=self.board.name, environment=self.environment,
                           inputs=self.inputs, kernel=task.kernel, knobs=knobs.to_dict(),
                           indices=task.indices, timeout=self.timeout, cap=self.cap)
        return str(directory)

    def build(self, build_inputs):
        results = []
        for item in build_inputs:
            try:
                results.append(ms.builder.BuilderResult(self.build_one(item.mod), None))
            except (CandidateError, IntermittentError) as err:
                results.append(ms.builder.BuilderResult(None, str(err)))
        return results


@derived_object
class MeasurementFuture(ms.runner.PyRunnerFuture):
    """One measurement in flight, on a local QEMU worker or a remote server: its result is
    the measured latency, or the error as this candidate's (as MetaSchedule's LocalRunner
    reports a worker's), and the tuning goes on."""

    def __init__(self, future, runner: str = ""):
        super().__init__()
        self.future = future
        self.prefix = f"{runner}: " if runner else ""
        #: The error when the measurement did not happen for a reason that is not the
        #: candidate's (an error whose ``candidate_fault`` is False: no tracker, no server);
        #: the tuner then stops instead of logging the candidate as failed.
        self.unavailable = None

    def done(self) -> bool:
        return self.future.done()

    def result(self):
        try:
            measured = self.future.result()
        except IntermittentError as err:
            if not getattr(err, "candidate_fault", True):
                self.unavailable = err
            return ms.runner.RunnerResult(None, f"{self.prefix}{err}")
        except (RuntimeError, OSError, ValueError) as err:
            # A connection that broke, or a reply that is no measurement.
            return ms.runner.RunnerResult(None, f"{self.prefix}{type(err).__name__}: {err}")
        return ms.runner.RunnerResult([float(s) for s in measured["run_secs"]], None)


@derived_object
class QemuRunner(ms.runner.PyRunner):
    """Measures artifacts on QEMU, ``workers`` at a time (:func:`.measure.measure_artifact`);
    each leaves its full measurement as ``measured.json`` in the artifact directory."""

    def __init__(self, workers: int = 1):
        super().__init__()
        self.workers = max(1, int(workers))
        self.pool = concurrent.futures.ThreadPoolExecutor(self.workers,
                                                          thread_name_prefix="intm-measure")

    def run(self, runner_inputs):
        return [MeasurementFuture(self.pool.submit(measure_artifact, item.artifact_path))
                for item in runner_inputs]

    def cancel(self) -> None:
        """Drop the measurements not started yet (an interrupted tuning run); those
        running end with their QEMU process."""
        self.pool.shutdown(wait=False, cancel_futures=True)
