"""Crash-safe writes: temp file in the same directory, fsync, then ``os.replace``.

A reader sees either the previous whole file or the new whole file, never a torn one: the
previous checkpoint stays in place until the new one is complete on disk. ``os.replace``
replaces a *link* planted at the path, never the file it points to; appends
(:func:`open_append`) refuse to open through a link (``O_NOFOLLOW``). mixkit never creates a
symbolic link, so :func:`links_in` finding one in a folder it writes means someone else put it
there (``docs/reliability.md``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from mixkit.engine.snapshot import CHECKPOINT_FORMAT


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_append(path: Path) -> io.TextIOWrapper:
    """``open(path, "a")`` that refuses a symbolic link at ``path`` (``OSError`` ELOOP); text
    that UTF-8 cannot hold (the bytes of a non-UTF-8 file name) is written as escapes."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o644), "a", encoding="utf-8",
                     errors="backslashreplace")


def links_in(folder: Path, names: Any = None) -> list[str]:
    """The symbolic links among ``folder``'s entries (only ``names`` if given), and the folder
    itself if it is one."""
    folder = Path(folder)
    if folder.is_symlink():
        return [str(folder)]
    if not folder.is_dir():
        return []
    entries = [folder / n for n in names] if names is not None else list(folder.iterdir())
    return [str(e) for e in entries if e.is_symlink()]


# sub-folders whose links another program makes (W&B links its debug logs and ``latest-run``
# inside RUN_DIR/wandb and replaces them on every run; mixkit writes nothing there itself)
THIRD_PARTY_FOLDERS = ("wandb",)


def links_under(folder: Path, skip: tuple[str, ...] = THIRD_PARTY_FOLDERS) -> list[str]:
    """Every symbolic link at any depth under ``folder`` (the folder itself first if it is
    one), not descending into links nor into the top-level folders named in ``skip``: a link
    planted one level down (``RUN_DIR/tb/<arm>``) would redirect a write as surely as one at
    the top."""
    folder = Path(folder)
    if folder.is_symlink():
        return [str(folder)]
    out: list[str] = []
    for here, dirs, files in os.walk(folder):
        top = Path(here) == folder
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(here, name)):
                out.append(os.path.join(here, name))
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(here, d))
                         and not (top and d in skip))
    return out


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code runs from the file).

    A missing, truncated or corrupt file is a UserError naming it: never a silent restart.
    """
    from mixkit.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}.",
                        hint="--resume takes a run directory that holds last.pt.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip failure means "not loadable"
        raise UserError(f"the checkpoint {path} is truncated or corrupt and cannot be loaded "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}).",
                        hint="Restore it from a backup, or start a new run.") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a mixkit checkpoint (format {CHECKPOINT_FORMAT}).",
                        hint="--resume takes a run directory written by this mixkit version.")
    return state
