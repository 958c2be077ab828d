"""The tuning log: a MetaSchedule JSON database and the measurements beside it.

A log is a directory::

    <log>/database_workload.json        MetaSchedule's workloads (one kernel's TIR a line)
    <log>/database_tuning_record.json   its tuning records: trace, run_secs, target
    <log>/measurements.jsonl            what QEMU measured of each record (this module)
    <log>/tune.lock                     held by the tuning run writing the log, if any

The first two are MetaSchedule's :class:`~tvm.s_tir.meta_schedule.database.JSONDatabase`,
which appends each workload and record as one line when it is committed. A record's
``run_secs`` is the measured latency of the whole model with that kernel cut by the record
and every other kernel by its default, on the record's board (its target's ``model``) under
the environment the sidecar names. The sidecar adds, per record, the board, the
environment, the knobs and the per-task instructions and NVM traffic; and per model and
board the measurements of the default and of the tuned build (kind ``default`` and
``tuned``), which the operator table reads.

MetaSchedule appends each database line through a C++ stream, which a run killed in the
middle of a write can leave cut short, and its loader then refuses the whole file ("Unexpected
end of string"). Opening a log therefore drops a last database line that has no newline (the
only line an interrupted append can leave) and logs a warning that it did; damage anywhere
else is refused with the file's name. Each sidecar line is written with one ``write`` to a
file opened for appending and then ``fsync``-ed, after the record itself is in the database;
a sidecar line cut short is dropped the same way (before the next append, which would
otherwise run on from it into one damaged line), and a record without its sidecar line is
measured again by the next run. What was dropped is kept as :attr:`TuningLog.notices`, which
``tune`` prints, so a resumed run says what it will measure again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from ..errors import InputError
from .knobs import CandidateError, Knobs, knobs_of

SIDECAR = "measurements.jsonl"
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
#: Locked by the tuning run writing the log (:meth:`TuningLog.lock`).
LOCK = "tune.lock"


def _drop_cut_line(path: Path) -> str | None:
    """Remove a last line without its newline from a log file (an append that was cut
    short); what was dropped, as a notice, or None."""
    from ..transform.notices import LOGGER  # pylint: disable=import-outside-toplevel

    if not path.exists():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    keep = data[:data.rfind(b"\n") + 1]
    notice = (f"tuning log {path}: its last line ({len(data) - len(keep)} bytes) was cut short "
              "by an interrupted write; dropped it (that record will be measured again)")
    LOGGER.warning("%s", notice)
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(keep)
    os.replace(staging, path)  # the file is whole before and after, never half-rewritten
    return notice


def model_key(model) -> str:
    """The key of a model's whole-build measurements (``default``, ``tuned``): its task
    table as the workloads of its kernels in order, so that the same network matches
    whatever it is named and whichever tiles a build gives it."""
    import hashlib  # pylint: disable=import-outside-toplevel

    keys = {t.kernel: workload_key(t.mod) for t in model.tasks}
    table = [keys.get(spec["kernel"], spec["kernel"]) for spec in model.manifest["tasks"]]
    return hashlib.sha1(json.dumps(table).encode()).hexdigest()[:16]


def workload_key(mod) -> str:
    """The structural hash of a workload: the sidecar's key for the kernel's TIR."""
    return f"{tvm_ffi.structural_hash(mod) & 0xFFFFFFFFFFFFFFFF:016x}"


class TuningLog:
    """A tuning log directory (created when ``create`` and missing).

    Raises
    ------
    InputError
        The path is a file, or a directory that is not a tuning log (it has files but no
        database), or one of its files is damaged.
    """

    def __init__(self, path, *, create: bool = False):
        self.path = Path(path)
        self.check_path(self.path, create=create)
        #: Whether this object made the directory (:meth:`discard` removes only such a log).
        self.created = not self.path.exists()
        if self.created:
            self.path.mkdir(parents=True)
        #: What opening the log repaired (cut lines dropped), one sentence each.
        self.notices = [n for n in (_drop_cut_line(self.path / name)
                                    for name in (WORKLOADS, RECORDS, SIDECAR)) if n]
        try:
            self.database = ms.database.JSONDatabase(work_dir=str(self.path))
        except Exception as err:  # pylint: disable=broad-except
            raise InputError(f"tuning log {str(self.path)!r} is damaged ({err}); remove the "
                             f"damaged lines of its {WORKLOADS} / {RECORDS}, or tune into a "
                             "new log") from None
        self._entries = self._read_sidecar()

    @staticmethod
    def check_path(path, *, create: bool = True) -> None:
        """Refuse a path that cannot be a tuning log, before anything is written.

        Raises
        ------
        InputError
            A file; a directory with files but no database; a missing directory when not
            ``create``.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"tuning log {str(path)!r} is a file; a tuning log is a "
                             "directory (tvm-intermittent tune --log DIR makes one)")
        if not path.exists():
            if not create:
                raise InputError(f"tuning log {str(path)!r} does not exist; make one with "
                                 "`tvm-intermittent tune MODEL --log DIR`")
            if not path.parent.is_dir():
                raise InputError(f"tuning log {str(path)!r}: its parent directory does not "
                                 "exist")
        elif any(path.iterdir()) and not (path / RECORDS).exists():
            raise InputError(f"{str(path)!r} is not a tuning log (no {RECORDS}); give the "
                             "directory `tvm-intermittent tune --log` wrote, or a new one")

    def lock(self) -> None:
        """Hold the log for this process's tuning run until the process ends, or refuse.

        Two runs appending to one log would each measure what the other is measuring and
        log it twice. The lock is a POSIX record lock on :data:`LOCK` (``lockf``): the
        system drops it when the process ends, however it ends, and it is per process, so
        that one process may open the log again.

        Raises
        ------
        InputError
            Another process holds the log.
        """
        import fcntl  # pylint: disable=import-outside-toplevel

        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(f"tuning log {str(self.path)!r} is being written by another tune "
                             f"run (process {holder}); wait for it to end, or give another "
                             "--log") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd  # kept open: closing any descriptor of the file drops the lock

    def discard(self) -> None:
        """Remove a log this object created and nothing was written to (a tuning run that
        stopped before its first measurement), so that a failed run leaves no empty log
        behind; any other log is left as it is."""
        if not self.created or self._entries or len(self.database):
            return
        for name in (WORKLOADS, RECORDS, SIDECAR, LOCK):
            (self.path / name).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass  # something else was put there meanwhile: keep it

    def other_models(self, model_hash: str) -> int:
        """How many other models' whole builds the log holds (the sidecar's ``default``
        measurements of another model key, :func:`model_key`)."""
        return len({e.get("model_hash") for e in self.measurements(kind="default")}
                   - {model_hash})

    # ---- the sidecar -------------------------------------------------------------------

    def _read_sidecar(self) -> list[dict]:
        path = self.path / SIDECAR
        if not path.exists():
            return []
        entries = []
        # A last line cut short was dropped when the log was opened (_drop_cut_line).
        for number, line in enumerate(path.read_text().split("\n"), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError as err:
                raise InputError(f"{str(path)!r} line {number} is damaged ({err}); remove "
                                 "that line, and the record is measured again") from None
        return entries

    def _append(self, entry: dict) -> None:
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.path / SIDECAR, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._entries.append(entry)

    def measurements(self, workload: str | None = None, *, board: str | None = None,
                     power_env: str | None = None, kind: str = "record") -> list[dict]:
        """Sidecar entries of ``kind`` (``record``, ``default``, ``tuned``), filtered."""
        return [e for e in self._entries if e.get("kind") == kind
                and (workload is None or e.get("workload") == workload)
                and (board is None or e.get("board") == board)
                and (power_env is None or e.get("power_env") == power_env)]

    def measured_knobs(self, task, board: str, power_env: str) -> dict[Knobs, dict]:
        """``knobs -> measurement`` of ``task``'s records on ``board`` under ``power_env``."""
        return {Knobs.from_dict(e["knobs"]): e for e in self.measurements(
            workload_key(task.mod), board=board, power_env=power_env)}

    def add_measurement(self, kind: str, entry: dict) -> None:
        """Append a ``default`` or ``tuned`` measurement of a whole build."""
        self._append({"kind": kind, **entry})

    # ---- records -----------------------------------------------------------------------

    def commit(self, task, sch, target, measured: dict) -> None:
        """Commit the record of candidate ``sch`` of ``task`` with its measurement."""
        workload = self.database.commit_workload(task.mod)
        record = ms.database.TuningRecord(
            sch.trace, workload, [float(s) for s in measured["run_secs"]], target,
            ms.arg_info.ArgInfo.from_prim_func(task.mod["main"]))
        self.database.commit_tuning_record(record)
        self._append({"kind": "record", "workload": workload_key(task.mod),
                      **{k: v for k, v in measured.items() if k != "kind"}})

    def records(self, task) -> list[tuple[Knobs, object]]:
        """``(knobs, TuningRecord)`` of every record of ``task``'s workload, each trace
        replayed to read its knobs; records whose trace does not replay are left out."""
        if not self.database.has_workload(task.mod):
            return []
        workload = self.database.commit_workload(task.mod)
        out = []
        for record in self.database.get_top_k(workload, 1 << 30):
            sch = tvm.s_tir.Schedule(task.mod)
            try:
                record.trace.apply_to_schedule(sch, remove_postproc=False)
                out.append((knobs_of(sch), record))
            except (CandidateError, tvm.TVMError):
                continue
        return out
