"""The run directory ``OUTPUT/EXPERIMENT/``: a public, machine-readable interface
(`docs/run-dir.md`).

``config.yaml`` (resolved, re-runnable), ``metrics.jsonl`` (one line per epoch and arm, flushed
per line), ``summary.json`` (final figures, written atomically), ``summary.csv`` (timm-style
per-epoch table) and ``last.pt`` (the latest checkpoint). ``docs/run-dir.md`` lists every key.

Safety rules (``docs/reliability.md``):

* a run directory is only ever created, written or deleted at ``OUTPUT/NAME`` with NAME one
  plain path component (:func:`mixkit.config.check_experiment`);
* ``--overwrite`` deletes only a directory that is recognisably a mixkit run (its
  ``config.yaml`` and nothing but the files mixkit writes) and that no live process holds;
* one writer per run directory: :class:`RunLock` (``flock`` on ``RUN_DIR/.lock``, released by
  the kernel when the process dies, so a crash never leaves it stuck);
* a failed write (a full disk) is :class:`WriteFailed`: exit 1, one paragraph, the previous
  checkpoint intact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mixkit.runio.files import (atomic_write, links_under, open_append, save_checkpoint,
                                     write_json)
from mixkit.errors import RunFailed, UserError

CSV_COLUMNS = ("arm", "phase", "epoch", "train_loss", "val_acc", "epoch_seconds", "lr",
               "inputs", "samples", "img_per_s")
# what mixkit writes into a run directory (anything else means: not ours to delete)
RUN_FILES = {"config.yaml", "metrics.jsonl", "summary.json", "summary.csv", "last.pt",
             "reconstruction.png", "reconstruction.json", "log.txt", "model.pt", ".lock"}
# (weights/ holds ARM.safetensors + ARM.json)
RUN_FOLDERS = {"plots", "weights", "tb", "wandb"}   # tb/, wandb/: --log-tensorboard/-wandb
LOCK_NAME = ".lock"
MAX_SUMMARY_BYTES = 4 << 20      # summary.json: a few kB per arm


class WriteFailed(RunFailed):
    """A run file could not be written (disk full, permissions): exit 1, checkpoint intact."""


def foreign_entries(path: Path) -> list[str]:
    """Entries of ``path`` that mixkit does not write (temp files of atomic writes are ours)."""
    out = []
    for entry in sorted(path.iterdir()):
        ours = (entry.name in RUN_FILES and entry.is_file()) or (
            entry.name in RUN_FOLDERS and entry.is_dir() and not entry.is_symlink()) or (
            entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file())
        if not ours:
            out.append(entry.name)
    return out


def _replaceable(path: Path) -> None:
    """Raise unless ``path`` is a mixkit run that ``--overwrite`` may delete."""
    if path.is_symlink() or not path.is_dir():
        raise UserError(f"--overwrite: {path} is not a directory mixkit created (a file or a "
                        "symbolic link); mixkit deletes nothing but its own run directories.",
                        hint="Remove it yourself, or pick another --experiment.")
    if not (path / "config.yaml").is_file():
        raise UserError(f"--overwrite: {path} is not a mixkit run directory (no config.yaml); "
                        "mixkit deletes nothing but its own run directories.",
                        hint="Pick another --experiment, or remove the folder yourself.")
    foreign = foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UserError(f"--overwrite: {path} holds files mixkit did not write ({shown}); it "
                        "will not delete them.",
                        hint="Move them out of the run directory, or pick another --experiment.")
    with RunLock(path):                 # a run still writing it is never deleted under it
        pass


def _claim(output: Path, experiment: str, strict: bool,
           overwrite: bool) -> tuple[Path, Path | None]:
    """The directory to write to, never silently replacing an existing run, and the old run
    that ``--overwrite`` set aside (or None).

    A name given as ``--experiment`` (``strict``) claims exactly that directory: if it exists,
    that is an error unless ``--overwrite``. A name from a config file or the default gets a
    ``-1``, ``-2``, ... suffix instead, so re-running a saved ``config.yaml`` just works.

    ``--overwrite`` does not delete the old run here: it renames it aside (``.NAME.replaced-PID``
    in the same folder, an atomic rename), and :meth:`RunDir.commit_replacement` deletes it
    once the new run has saved its first checkpoint. A new run that fails before that (a
    corrupt image found in the first epoch, a logger that cannot start, a crash) puts the old
    one back (:meth:`RunDir.discard`): a finished run is never lost to a run that never started.
    """
    path = output / experiment
    if not path.exists() and not path.is_symlink():
        return path, None
    if overwrite:
        _replaceable(path)
        aside = path.with_name(f".{path.name}.replaced-{os.getpid()}")
        try:
            os.rename(path, aside)
        except OSError as exc:
            raise UserError(f"--overwrite: cannot move the old run {path} aside: "
                            f"{exc.strerror}.", hint="Check the permissions of --output.") from None
        return path, aside
    if strict:
        interrupted = run_status(path / "summary.json") == "interrupted" or (
            (path / "last.pt").is_file() and not (path / "summary.json").is_file())
        hint = (f"It holds an unfinished run: continue it with `--resume {path}`, or pass "
                "--overwrite to replace it." if interrupted else
                "Pick another --experiment, or pass --overwrite to replace it.")
        raise UserError(f"the run directory {path} already exists (--experiment "
                        f"{experiment}); mixkit never overwrites a run silently.", hint=hint)
    n = 1
    while (output / f"{experiment}-{n}").exists():
        n += 1
    return output / f"{experiment}-{n}", None


def run_status(path: Path) -> str | None:
    """``summary.json``'s ``status`` (completed, interrupted, failed), or None."""
    try:
        if path.is_symlink() or path.stat().st_size > MAX_SUMMARY_BYTES:
            return None
        status = json.loads(path.read_text()).get("status")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return status if isinstance(status, str) else None


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``.

    The kernel drops the lock when the process exits, however it exits, so a crashed run never
    leaves its directory locked. The holder's PID is written into the file for the message a
    second writer gets. Where ``fcntl`` does not exist (Windows) no lock is taken.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.TextIOWrapper | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:          # pragma: no cover - Windows
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        f = os.fdopen(os.open(self.path / LOCK_NAME, flags, 0o644), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise UserError(f"the run directory {self.path} is in use by another mixkit "
                            f"process (pid {holder}); one run directory has one writer.",
                            hint="Wait for that process to finish or stop it (it saves a "
                            "resumable checkpoint), then run again.") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()           # closing drops the flock
            self._file = None


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into :class:`WriteFailed` (exit 1, no trace)."""
    try:
        yield
    except OSError as exc:
        raise WriteFailed(f"could not write {path}: {exc.strerror or exc}. The previous "
                          "checkpoint (last.pt) is intact.") from None


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.lock = RunLock(path)
        self.made_output = False
        self.created = False                # by this process (not a --resume)
        self.replaced: Path | None = None   # the old run --overwrite set aside, until committed
        self.saved = False                  # a checkpoint or summary was written
        self._discarded = False

    @classmethod
    def create(cls, output: str, experiment: str, *, strict: bool, overwrite: bool) -> "RunDir":
        made_output = not Path(output).exists()
        path, aside = _claim(Path(output), experiment, strict, overwrite)
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            if aside is not None:
                os.rename(aside, path)
            if isinstance(exc, FileExistsError):
                raise UserError(f"the run directory {path} was created by another process "
                                "just now.", hint="Pick another --experiment.") from None
            raise UserError(f"cannot create the run directory {path}: {exc.strerror}.",
                            hint="Choose a writable --output.") from None
        rundir = cls(path)
        rundir.made_output, rundir.created, rundir.replaced = made_output, True, aside
        rundir.lock.acquire()
        return rundir

    @property
    def pristine(self) -> bool:
        """Created by this process and nothing resumable written yet: safe to discard."""
        return self.created and not self.saved and not self._discarded

    def commit_replacement(self) -> None:
        """The new run has started (its first checkpoint is on disk): delete the old run that
        ``--overwrite`` set aside."""
        self.saved = True
        if self.replaced is not None:
            shutil.rmtree(self.replaced, ignore_errors=True)
            self.replaced = None

    @classmethod
    def reopen(cls, path: Path) -> "RunDir":
        """An existing run directory, locked, with temp files of interrupted writes removed."""
        links = links_under(path)
        if links:
            raise UserError(f"{path} is or holds a symbolic link ({links[0]}); mixkit never "
                            "creates one, and reads and writes nothing through one.",
                            hint="Replace the link with the file it points to, or start a new "
                            "run.")
        rundir = cls(path)
        rundir.lock.acquire()
        for stale in path.glob(".*.tmp"):     # only a dead writer leaves these; we hold the lock
            stale.unlink(missing_ok=True)
        return rundir

    def discard(self) -> None:
        """Remove a run directory this process created and trained nothing into (a user
        error found mid-run, such as an undecodable image in a streamed folder)."""
        if self._discarded:
            return
        self._discarded = True
        self.lock.release()
        shutil.rmtree(self.path, ignore_errors=True)
        if self.replaced is not None:         # --overwrite's old run comes back, untouched
            os.rename(self.replaced, self.path)
            self.replaced = None
        elif self.made_output:                # --output too, if this run made it and it is empty
            try:
                self.path.parent.rmdir()
            except OSError:
                pass

    def open_log(self) -> "LogFile":
        """``log.txt``: what the console showed, as plain lines (appended on resume)."""
        return LogFile(self.path / "log.txt")

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "last.pt"

    def _atomic(self, name: str, write: Callable[[io.BufferedWriter], None]) -> None:
        with writing(self.path / name):
            atomic_write(self.path / name, write)

    def write_config(self, text: str) -> None:
        """``config.yaml``: the resolved config as YAML (the command layer renders it)."""
        self._atomic("config.yaml", lambda f: f.write(text.encode()))

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        with writing(self.checkpoint_path):
            save_checkpoint(checkpoint, self.checkpoint_path)
        self.commit_replacement()

    def reset_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl and summary.csv to ``rows`` (a resumed run drops any row
        logged after its checkpoint, so no epoch appears twice)."""
        text = "".join(json.dumps(r) + "\n" for r in rows)
        self._atomic("metrics.jsonl", lambda f: f.write(text.encode()))
        self.rows = list(rows)
        self._write_csv()

    def log(self, row: dict[str, Any]) -> None:
        """Append one epoch's row to metrics.jsonl (flushed and fsynced) and summary.csv."""
        with writing(self.path / "metrics.jsonl"):
            with open_append(self.path / "metrics.jsonl") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.rows.append(row)
        self._write_csv()

    def _write_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        self._atomic("summary.csv", lambda f: f.write(buf.getvalue().encode()))

    def save_weights(self, arm: str, payload: dict[str, Any]) -> None:
        """``weights/ARM.safetensors`` and ``weights/ARM.json`` (each atomic), see
        :mod:`mixkit.models.weights`."""
        from mixkit.models.weights import rebuild_info, to_safetensors

        folder = self.path / "weights"
        with writing(folder / f"{arm}.safetensors"):
            if folder.is_symlink():
                raise OSError(40, "weights/ is a symbolic link; mixkit writes no file through one")
            folder.mkdir(exist_ok=True)
            data = to_safetensors(payload)
            atomic_write(folder / f"{arm}.safetensors", lambda f: f.write(data))
            write_json(folder / f"{arm}.json", rebuild_info(payload))

    def weights(self) -> list[str]:
        """The weights files saved so far, relative to the run dir."""
        return sorted(f"weights/{p.name}" for p in (self.path / "weights").glob("*.safetensors"))

    def drop_checkpoint(self) -> None:
        """Delete ``last.pt`` once the run has completed (it is only good for resuming)."""
        self.checkpoint_path.unlink(missing_ok=True)

    def write_json(self, name: str, obj: Any) -> None:
        with writing(self.path / name):
            write_json(self.path / name, obj)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.write_json("summary.json", summary)
        self.commit_replacement()


class LogFile(io.TextIOBase):
    """An append-only text file that never stops a run: a log line that cannot be written (a
    full disk) is dropped, and the checkpoint's own write reports the problem (exit 1)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f: io.TextIOWrapper | None = open_append(path)
        except OSError:
            self._f = None

    def write(self, text: str) -> int:
        if self._f is not None:
            try:
                self._f.write(text)
                self._f.flush()
            except OSError:
                self._f = None
        return len(text)

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None
        super().close()
