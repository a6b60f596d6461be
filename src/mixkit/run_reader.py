"""Finished (or unfinished) run directories as data, grouped for a report.

``mixkit report`` reads what a run wrote — ``config.yaml``, ``metrics.jsonl`` and, once it
finished, ``summary.json`` (``docs/run-dir.md``) — and groups runs that differ only in
``--seed``, so an arm's figures are means ± sd over seeds.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mixkit.command import COMMANDS, command_for_config
from mixkit.options import keys_with
from mixkit.runio.files import links_in
from mixkit.engine.timing import speedup
from mixkit.errors import UserError



def not_the_experiment() -> frozenset[str]:
    """Config keys that do not make two runs different experiments (read when asked: each
    command's options are defined with its registration)."""
    return keys_with("seed", "run", "name")


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The command that wrote the run: its summary says; an unfinished run's config is
        matched against the registered commands' options ("" when none matches)."""
        return self.summary.get("command") or command_for_config(self.config) or ""

    @property
    def finished(self) -> bool:
        return self.summary.get("status") == "completed"

    @property
    def arms(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r["arm"] not in seen:
                seen.append(r["arm"])
        return seen

    @property
    def baseline_arm(self) -> str:
        return self.summary.get("baseline_arm") or self._spec("baseline_arm") or "baseline"

    @property
    def method_arm(self) -> str:
        return self.summary.get("method_arm") or self._spec("method_arm") or self.command

    def _spec(self, attr: str) -> str | None:
        spec = COMMANDS.get(self.command)
        return getattr(spec, attr) if spec is not None else None

    def arm_rows(self, arm: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["arm"] == arm]

    def key(self) -> tuple:
        """What makes an experiment: the config without seed and where-it-runs options."""
        return (self.command, tuple(sorted((k, json.dumps(v)) for k, v in self.config.items()
                                           if k not in not_the_experiment())))


def expand(paths: list[str]) -> list[Path]:
    """Run directories from arguments (a quoted glob is expanded here, as the shell would)."""
    out: list[Path] = []
    for p in paths:
        literal = Path(p).exists() or Path(p).is_symlink()   # a name may hold [ ] * ?
        hits = sorted(glob.glob(p)) if not literal and any(c in p for c in "*?[") else [p]
        out += [Path(h) for h in hits]
    return out


# What a report reads, at most (docs/run-dir.md, "Limits"): a 1,000-epoch run of ten arms writes
# 10,000 rows of ~0.5 kB; anything far beyond is not a mixkit run and is not read.
MAX_ROWS = 100_000
MAX_LINE_BYTES = 64 << 10
MAX_SUMMARY_BYTES = 4 << 20
NAME = re.compile(r"[A-Za-z0-9_+\-.@:=,]{1,64}")      # arm and phase names (mixkit's, benchmarks')
MAX_INT = 2 ** 53


def _num(v: Any, lo: float | None = 0.0, hi: float | None = None, integer: bool = False,
         null: bool = False) -> str | None:
    """Why ``v`` is not a valid number in [lo, hi] (None when it is)."""
    if v is None:
        return None if null else "is null"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and
                                                                   not isinstance(v, int)):
        return f"is not {'an integer' if integer else 'a number'} ({_short(v)})"
    if (abs(v) > MAX_INT) if isinstance(v, int) else (not math.isfinite(v) or abs(v) > MAX_INT):
        return f"is not a finite number of sensible size ({_short(v)})"
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return f"is {v}, outside [{lo}, {hi if hi is not None else 'inf'}]"
    return None


def _counts(v: Any, hi: float | None = None) -> str | None:
    if not isinstance(v, dict) or len(v) > 64:
        return f"is not a mapping of counts ({_short(v)})"
    for k, x in v.items():
        why = _num(x, 0.0, hi)
        if why or not NAME.fullmatch(str(k)):
            return f"[{_short(k)}] {why or 'is not a plain name'}"
    return None


def number(lo: float | None = 0.0, hi: float | None = None, integer: bool = False,
           null: bool = False) -> Callable[[Any], str | None]:
    """A row check: a number in [lo, hi] (an integer, or null, where asked)."""
    return lambda v: _num(v, lo, hi, integer, null)


def counts(hi: float | None = None) -> Callable[[Any], str | None]:
    """A row check: a mapping of plain names to numbers in [0, hi] (region counts, ...)."""
    return lambda v: _counts(v, hi)


def _name(v: Any) -> str | None:
    return None if isinstance(v, str) and NAME.fullmatch(v) else \
        f"is not a plain name ({_short(v)})"


# metrics.jsonl's keys that the engine writes for every arm (docs/run-dir.md): (required, check).
# A command's own keys come with its registration (``CommandSpec.row_keys``).
ENGINE_ROW_KEYS: dict[str, tuple[bool, Callable[[Any], str | None]]] = {
    "arm": (True, _name),
    "phase": (True, _name),
    "epoch": (True, number(0, integer=True)),
    "train_loss": (True, number(None, null=True)),
    "epoch_seconds": (True, number(0.0)),
    "inputs": (True, number(1, integer=True)),
    "samples": (True, number(1, integer=True)),
    **{k: (False, number(0.0)) for k in ("img_per_s", "lr", "lr_end", "data_seconds",
                                        "compile_seconds")},
    "data_share": (False, number(0.0, 1.0)),
    "val_acc": (False, number(0.0, 1.0, null=True)),
    "val_acc_ema": (False, number(0.0, 1.0, null=True)),
    "task_accuracy": (False, counts(1.0)),
}


def row_checks() -> dict[str, tuple[bool, Callable[[Any], str | None]]]:
    """The engine's keys and every registered command's (``CommandSpec.row_keys``)."""
    out = dict(ENGINE_ROW_KEYS)
    for spec in COMMANDS.values():
        out.update({k: (False, check) for k, check in spec.row_keys.items()})
    return out


def check_row(row: Any) -> str | None:
    """Why a parsed metrics row does not fit the schema (None when it does). A key no
    registered command declares (a newer version's, a user's own arm's) is accepted when its
    value is a plain number or string, or a flat mapping of names to numbers."""
    if not isinstance(row, dict):
        return f"is a JSON {type(row).__name__}, not an object"
    checks = row_checks()
    for key, (required, check) in checks.items():
        if key not in row:
            if required:
                return f"has no `{key}`"
            continue
        why = check(row[key])
        if why:
            return f"`{key}` {why}"
    for key, v in row.items():
        if key in checks or v is None or isinstance(v, (bool, int, float, str)):
            continue
        why = _counts(v, None) if NAME.fullmatch(str(key)) else "is not a plain name"
        if why:
            return f"`{_short(key)}` {why}"
    return None


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


class RunDirInvalid(UserError):
    """A run directory that does not fit the schema of docs/run-dir.md (one paragraph)."""


def _open_plain(path: Path):
    """``path`` for reading, refusing a symbolic link (mixkit never writes one)."""
    return os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")


def read_rows(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    """``metrics.jsonl``, bounded and validated. A torn last line (a crash mid-append) is left
    out with a note in ``notes``; any other bad line makes the file unusable (RunDirInvalid
    naming the line)."""
    rows: list[dict[str, Any]] = []
    with _open_plain(path) as f:
        for n in range(1, MAX_ROWS + 2):
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                return rows
            if n > MAX_ROWS:
                raise RunDirInvalid(f"{path} has more than {MAX_ROWS:,} rows; a mixkit run writes "
                                    "one per epoch and arm, so it is not read.")
            if len(line) > MAX_LINE_BYTES:
                raise RunDirInvalid(f"{path}, line {n}: longer than "
                                    f"{MAX_LINE_BYTES // 1024} KiB; a metrics row is well "
                                    "under 1 KiB.")
            last = not line.endswith(b"\n") and not f.peek(1) if hasattr(f, "peek") else False
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                why = check_row(row)
            except (ValueError, RecursionError):
                row, why = None, "is not valid JSON"
            if why and last:
                notes.append(f"{path}, line {n}: a torn last line (a crash mid-write) is left out")
                return rows
            if why:
                raise RunDirInvalid(f"{path}, line {n}: the row {why}.")
            if row.get("val_acc", 0) is None:        # not evaluated: as if the key were absent
                del row["val_acc"]
            rows.append(row)
    return rows


def _read_config(path: Path) -> dict[str, Any]:
    from mixkit.options import read_yaml

    if path.is_symlink():
        raise RunDirInvalid(f"{path} is a symbolic link; mixkit reads nothing through one.")
    config = read_yaml(path)        # size limit, no aliases, depth (a UserError naming it)
    for k, v in config.items():
        plain = v is None or isinstance(v, (bool, int, float, str)) or (
            isinstance(v, list) and all(isinstance(x, (int, float, str)) for x in v))
        if not isinstance(k, str) or not plain:
            raise RunDirInvalid(f"{path}: `{_short(k)}` is not an option: value pair of plain "
                                "values (a mixkit config is flat).")
    return config


def _read_summary(path: Path) -> dict[str, Any]:
    if not path.exists() and not path.is_symlink():
        return {}
    if path.stat().st_size > MAX_SUMMARY_BYTES:
        raise RunDirInvalid(f"{path} is larger than {MAX_SUMMARY_BYTES >> 20} MiB; not read.")
    with _open_plain(path) as f:
        try:
            summary = json.loads(f.read())
        except (ValueError, RecursionError):
            raise RunDirInvalid(f"{path} is not valid JSON.") from None
    if not isinstance(summary, dict):
        raise RunDirInvalid(f"{path} is not a JSON object.")
    for key, ok in (("command", lambda v: v is None or (isinstance(v, str)
                                                        and NAME.fullmatch(v))),
                    ("status", lambda v: v is None or isinstance(v, str)),
                    ("baseline_arm", lambda v: v is None or (isinstance(v, str)
                                                             and NAME.fullmatch(v))),
                    ("method_arm", lambda v: v is None or (isinstance(v, str)
                                                           and NAME.fullmatch(v)))):
        if not ok(summary.get(key)):
            raise RunDirInvalid(f"{path}: `{key}` is {_short(summary.get(key))}, not what "
                                "docs/run-dir.md says it holds.")
    return summary


def load_run(path: Path, notes: list[str] | None = None) -> Run:
    """One run directory, every file checked against ``docs/run-dir.md`` before use; a path that
    is not one, or holds a file that does not fit, is a UserError naming the file (and line).
    Notes on what was left out (a torn last line) go to ``notes``."""
    notes = notes if notes is not None else []
    links = links_in(path, ["config.yaml", "metrics.jsonl", "summary.json"])
    if links:
        raise RunDirInvalid(f"{links[0]} is a symbolic link; mixkit never writes one and reads "
                            "nothing through one.", hint="Pass the run directory itself.")
    if not (path / "config.yaml").is_file() or not (path / "metrics.jsonl").is_file():
        raise UserError(f"{path} is not a mixkit run directory (it needs config.yaml and "
                        "metrics.jsonl).", hint="Pass OUTPUT/EXPERIMENT folders, e.g. "
                        "`mixkit report runs/*`.")
    try:
        config = _read_config(path / "config.yaml")
        rows = read_rows(path / "metrics.jsonl", notes)
        summary = _read_summary(path / "summary.json")
    except OSError as exc:
        raise UserError(f"{path} cannot be read as a run directory ({exc.strerror or exc}).") \
            from None
    if not rows:
        raise RunDirInvalid(f"{path / 'metrics.jsonl'} has no complete row yet.")
    return Run(path, config, rows, summary)


def group(runs: list[Run]) -> list[list[Run]]:
    """Runs that differ only in ``--seed`` (and where they ran), in first-seen order."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.key(), []).append(r)
    return list(groups.values())


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0) if xs else (
        float("nan"), float("nan"))


def final_accuracy(rows: list[dict[str, Any]]) -> float | None:
    vals = [r["val_acc"] for r in rows if "val_acc" in r]
    return vals[-1] if vals else None


def time_to(rows: list[dict[str, Any]], target: float) -> float | None:
    """Training seconds at the end of the first epoch whose accuracy reaches ``target``
    (DAWNBench's time to accuracy), or None if no epoch does."""
    spent = 0.0
    for r in rows:
        spent += r["epoch_seconds"]
        if r.get("val_acc") is not None and r["val_acc"] >= target:
            return spent
    return None


def arm_table(runs: list[Run], target: float | None) -> list[dict[str, Any]]:
    """Per arm, over the group's seeds: accuracy, seconds, inputs, speedup and Δ accuracy
    against the baseline arm (mean, sd), and time to ``target`` (default: the baseline's mean
    final accuracy minus 0.5 points)."""
    base = runs[0].baseline_arm
    base_acc = [final_accuracy(r.arm_rows(base)) for r in runs if r.arm_rows(base)]
    base_acc = [a for a in base_acc if a is not None]
    if target is None and base_acc:
        target = statistics.mean(base_acc) - 0.005
    out = []
    for arm in runs[0].arms:
        per = [(r, r.arm_rows(arm), r.arm_rows(base)) for r in runs if r.arm_rows(arm)]
        acc = [final_accuracy(rows) for _, rows, _ in per]
        secs = [sum(x["epoch_seconds"] for x in rows) for _, rows, _ in per]
        inputs = [sum(x["inputs"] for x in rows) for _, rows, _ in per]
        speed = [v for (_, _, b), s in zip(per, secs) if b and (v := speedup(
            sum(x["epoch_seconds"] for x in b), s)) is not None]   # an arm of 0 s: no speed
        delta = [a - final_accuracy(b) for (_, _, b), a in zip(per, acc)
                 if b and a is not None and final_accuracy(b) is not None]
        ttt = [time_to(rows, target) for _, rows, _ in per] if target is not None else []
        out.append({"arm": arm, "seeds": len(per),
                    "accuracy": mean_sd([a for a in acc if a is not None]),
                    "seconds": mean_sd(secs), "inputs": mean_sd(inputs),
                    "speedup": mean_sd(speed), "delta": mean_sd(delta),
                    "time_to_target": ttt, "target": target,
                    "finished": all(r.finished for r, _, _ in per)})
    return out
