"""Helpers the benchmark scripts share (run them from the repository root).

Benchmarks use mixkit's public names only (``mixkit``, ``mixkit.experiment``,
``mixkit.functional``: ``docs/api.md``). They take a command's options from
:func:`mixkit.experiment.options` (:func:`config_options`), so every option a command has is a
benchmark flag too, validated the same way, and a new option never needs adding twice.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any, Callable

import torch

from mixkit import experiment


def mean_sd(xs: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.{digits}f} ± {sd:.{digits}f}"


def config_options(parser: argparse.ArgumentParser, command: str,
                   defaults: dict[str, Any]) -> Callable[[argparse.Namespace], Any]:
    """Add every option of ``mixkit COMMAND`` to ``parser`` (``--a-b`` for setting ``a_b``,
    ``--x/--no-x`` for booleans), with the benchmark's ``defaults`` where it has its own.

    Returns ``build(args)``: the validated settings of the parsed options (unset ones keep the
    command's default), as ``mixkit`` itself would build them.
    """
    group = parser.add_argument_group(f"mixkit {command} options (see `mixkit {command} "
                                      "--help`)")
    names = []
    for opt in experiment.options(command):
        if not opt.per_experiment:      # where a run dir goes, --overwrite, --no-baseline...
            continue
        flags = [opt.flag] + ([opt.short] if opt.short else [])
        kw: dict[str, Any] = {"dest": opt.name, "default": defaults.get(opt.name),
                              "help": opt.help.replace("%", "%%")}
        if opt.type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = opt.type
            if opt.choices:
                kw["choices"] = opt.choices
        group.add_argument(*flags, **kw)
        names.append(opt.name)

    def build(args: argparse.Namespace) -> Any:
        values = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        return experiment.settings(command, **values)
    return build


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Seeds, CPU threads, saved rows and pooling: what every training benchmark takes."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); with `taskset -c K` and "
                        "--threads 1 a benchmark owns one core while other work uses the rest")
    parser.add_argument("--rows-out", default=None,
                        help="write every arm's metrics rows, per seed, to this JSON file")
    parser.add_argument("--pool", nargs="+", default=None, metavar="ROWS_JSON",
                        help="train nothing: summarise the seeds of earlier --rows-out files")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def save_rows(path: str, seeds: list[int], runs: list[dict], meta: dict[str, Any]) -> None:
    """Every arm's metrics rows per seed (and the settings), so seeds run at different times can
    be pooled with ``--pool``."""
    with open(path, "w") as f:
        json.dump({"meta": meta, "seeds": [{"seed": s, **{k: v.rows for k, v in r.items()}}
                                           for s, r in zip(seeds, runs)]}, f)


def load_rows(paths: list[str]) -> tuple[list[dict[str, list[dict]]], list[dict[str, Any]]]:
    """The per-seed rows of ``--rows-out`` files (a list of seeds, or {meta, seeds}), and each
    file's settings."""
    seeds, metas = [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            metas.append(data.get("meta", {}))
            data = data["seeds"]
        seeds += [{k: v for k, v in s.items() if k != "seed"} for s in data]
    return seeds, metas


def load_rows_by_seed(paths: list[str]
                      ) -> tuple[dict[int, dict[str, list[dict]]], list[dict[str, Any]]]:
    """``--rows-out`` files as {seed: {arm: rows}} (a later file's arm replaces an earlier
    one's) and each file's settings. Lets a benchmark that trains only some arms take the
    others from an earlier run of the same seeds."""
    out: dict[int, dict[str, list[dict]]] = {}
    metas = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        metas.append(data.get("meta", {}) if isinstance(data, dict) else {})
        for s in data["seeds"] if isinstance(data, dict) else data:
            if "seed" not in s:
                raise SystemExit(f"{path}: rows without seed numbers cannot be matched by seed")
            out.setdefault(s["seed"], {}).update({k: v for k, v in s.items() if k != "seed"})
    return out, metas
