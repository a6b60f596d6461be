"""The run directory ``OUTPUT/EXPERIMENT/``: a public, machine-readable interface (SPEC §7).

``config.yaml`` (resolved, re-runnable), ``metrics.jsonl`` (one line per epoch and arm, flushed
per line), ``summary.json`` (final figures, written atomically), ``summary.csv`` (timm-style
per-epoch table) and ``last.pt`` (the latest checkpoint). ``docs/run-dir.md`` lists every key.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

from mixkit.config import dump_yaml
from mixkit.engine.checkpoint import atomic_write, write_json
from mixkit.errors import UserError

CSV_COLUMNS = ("arm", "phase", "epoch", "train_loss", "val_acc", "epoch_seconds", "lr",
               "inputs", "samples", "img_per_s")


def _claim(output: Path, experiment: str, strict: bool, overwrite: bool) -> Path:
    """The directory to write to, never silently replacing an existing run.

    A name given as ``--experiment`` (``strict``) claims exactly that directory: if it exists,
    that is an error unless ``--overwrite``. A name from a config file or the default gets a
    ``-1``, ``-2``, ... suffix instead, so re-running a saved ``config.yaml`` just works.
    """
    path = output / experiment
    if not path.exists():
        return path
    if overwrite:
        shutil.rmtree(path)
        return path
    if strict:
        raise UserError(f"the run directory {path} already exists (--experiment "
                        f"{experiment}); mixkit never overwrites a run silently.",
                        hint="Pick another --experiment, or pass --overwrite to replace it.")
    n = 1
    while (output / f"{experiment}-{n}").exists():
        n += 1
    return output / f"{experiment}-{n}"


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def create(cls, output: str, experiment: str, *, strict: bool, overwrite: bool) -> "RunDir":
        path = _claim(Path(output), experiment, strict, overwrite)
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise UserError(f"cannot create the run directory {path}: {exc.strerror}.",
                            hint="Choose a writable --output.") from None
        return cls(path)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "last.pt"

    def write_config(self, cfg: Any) -> None:
        atomic_write(self.path / "config.yaml", lambda f: f.write(dump_yaml(cfg).encode()))

    def reset_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl and summary.csv to ``rows`` (a resumed run drops any row
        logged after its checkpoint, so no epoch appears twice)."""
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write(self.path / "metrics.jsonl", lambda f: f.write(text.encode()))
        self.rows = list(rows)
        self._write_csv()

    def log(self, row: dict[str, Any]) -> None:
        """Append one epoch's row to metrics.jsonl (flushed and fsynced) and summary.csv."""
        with open(self.path / "metrics.jsonl", "a") as f:
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
        atomic_write(self.path / "summary.csv", lambda f: f.write(buf.getvalue().encode()))

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "summary.json", summary)
