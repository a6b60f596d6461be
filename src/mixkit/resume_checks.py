"""``--resume RUN_DIR``: every check before a stopped run continues, and its saved config.

A resume must continue *the same run*: the run directory's ``config.yaml`` with only
where-it-runs options changed, a checkpoint whose structure, command, arms and recipe match it,
and the world size it was written with. Anything else is an exit-2 message naming the file
(``docs/reliability.md``). The engine then restores the checkpoint
(:mod:`mixkit.engine.snapshot`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixkit.command import command_names
from mixkit.options import flag_of, keys_with, load_config, recipe_dict
from mixkit.engine import distributed as D
from mixkit.runio.files import links_under, load_checkpoint
from mixkit.runio.rundir import run_status
from mixkit.errors import UserError

if TYPE_CHECKING:
    from mixkit.command import CommandSpec


# where and how a run runs may change on resume (and --resume itself is given); nothing else


def resumable() -> frozenset[str]:
    """The keys ``--resume`` may change (every command's ``run`` keys, read when asked: each
    command's options are defined with its registration)."""
    return keys_with("run") | {"resume"}
# what a checkpoint must hold, and of which type, before anything in it is trusted
CHECKPOINT_KEYS = {"command": str, "arm": str, "epoch": int, "batch": int, "rows": list,
                   "ranks": list, "done": dict, "model": dict, "world_size": int}


def recipe_fingerprint(cfg: Any) -> dict[str, Any]:
    """The part of a config a resume must not change (everything but where it runs)."""
    return {k: v for k, v in recipe_dict(cfg).items() if k not in resumable()}


def recipe_hash(recipe: dict[str, Any]) -> str:
    """sha256 of the recipe part of a config (key-order independent)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _check_checkpoint(path: Path, ckpt: dict[str, Any], command: "CommandSpec") -> None:
    """A checkpoint's structure, before any of it is used: a crafted or foreign file is an
    exit-2 message, never a KeyError deep in the restore."""
    for key, tp in CHECKPOINT_KEYS.items():
        if not isinstance(ckpt.get(key), tp) or isinstance(ckpt.get(key), bool):
            raise UserError(f"the checkpoint {path} is not a complete mixkit checkpoint "
                            f"(`{key}` is missing or not a {tp.__name__}).",
                            hint="Restore it from a backup, or start a new run with "
                            f"--config {path.parent / 'config.yaml'}.")
    problem = _position_problem(ckpt) or _rows_problem(ckpt["rows"], "rows") or next(
        (p for name, d in ckpt["done"].items() if (p := _done_problem(name, d))), None)
    if problem:
        raise UserError(f"the checkpoint {path} does not hold a valid run state: {problem}.",
                        hint="Restore it from a backup, or start a new run with "
                        f"--config {path.parent / 'config.yaml'}.")
    if ckpt["command"] not in command_names():
        raise UserError(f"the checkpoint {path} names an unknown command "
                        f"`{str(ckpt['command'])[:40]}`.", hint="Restore it from a backup.")
    if ckpt["command"] != command.name:
        launch = (f"torchrun --nproc_per_node {ckpt['world_size']} -m mixkit"
                  if ckpt["world_size"] > 1 else "mixkit")
        raise UserError(f"--resume {path.parent} is a `mixkit {ckpt['command']}` run, not "
                        f"`mixkit {command.name}`.",
                        hint=f"Run {launch} {ckpt['command']} --resume {path.parent}.")


# what every metrics row holds (ArmResult.from_rows sums these), and of which type
ROW_KEYS = {"arm": str, "epoch": int, "epoch_seconds": (int, float), "inputs": int,
            "samples": int}


def _position_problem(ckpt: dict[str, Any]) -> str | None:
    """The stop position's lower bounds (the upper ones need the arm: the engine checks them)."""
    if ckpt["epoch"] < 0 or ckpt["batch"] < 0:
        return f"its position (epoch {ckpt['epoch']}, batch {ckpt['batch']}) is negative"
    return None


def _rows_problem(rows: Any, where: str) -> str | None:
    """Why ``rows`` is not a list of metrics rows, or None."""
    if not isinstance(rows, list):
        return f"`{where}` is a {type(rows).__name__}, not a list of metrics rows"
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            return f"`{where}[{k}]` is a {type(row).__name__}, not a metrics row"
        for key, tp in ROW_KEYS.items():
            value = row.get(key)
            if not isinstance(value, tp) or isinstance(value, bool):
                return f"`{where}[{k}]` has no valid `{key}`"
            if key != "arm" and not 0 <= value < float("inf"):
                return f"`{where}[{k}]` has `{key}` {value!r}"
    return None


def _done_problem(name: Any, done: Any) -> str | None:
    """Why a finished arm's saved state is not one, or None."""
    if not isinstance(name, str) or not isinstance(done, dict):
        return "`done` does not map arm names to their saved results"
    epochs = done.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        return f"`done[{name[:40]!r}]` has no valid `epochs`"
    if not isinstance(done.get("artifacts", {}), dict):
        return f"`done[{name[:40]!r}].artifacts` is not a mapping"
    return _rows_problem(done.get("rows"), f"done[{name[:40]!r}].rows")


def _check_recipe(path: Path, ckpt: dict[str, Any], cfg: Any) -> None:
    """``config.yaml`` must still describe the run the checkpoint belongs to."""
    saved = ckpt.get("config_recipe")
    if not isinstance(saved, dict):          # written before checkpoints kept the recipe
        return
    now = recipe_fingerprint(cfg)
    if ckpt.get("config_hash") == recipe_hash(now):
        return
    # an option added to mixkit after the run started is absent from its saved recipe; at its
    # default it means what the run did without it, so it is no difference
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k)
                    and not (k not in saved and now.get(k) == defaults.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in differ[:4])
        raise UserError(f"--resume {path.parent}: config.yaml no longer matches the run its "
                        f"checkpoint belongs to ({shown}); an exact resume needs the recipe "
                        "it started with.",
                        hint="Restore config.yaml, or start a new run with the edited file "
                        f"(mixkit ... --config {path.parent / 'config.yaml'}).")


def resume_config(cls: type, command: "CommandSpec",
                  overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The saved config and last checkpoint of ``--resume RUN_DIR``, or a UserError."""
    path = Path(overrides["resume"])
    links = links_under(path)
    if links:
        raise UserError(f"--resume {path} is or holds a symbolic link ({links[0]}); mixkit never "
                        "creates one, and reads and writes nothing through one.",
                        hint="Replace the link with the file it points to, or start a new run.")
    if not (path / "config.yaml").is_file():
        raise UserError(f"--resume {path} is not a mixkit run directory (no config.yaml).",
                        hint="Pass the OUTPUT/EXPERIMENT directory of a stopped run.")
    changed = sorted(set(overrides) - resumable())
    if changed:
        flag = flag_of(changed[0])
        raise UserError(f"--resume continues a run with its saved config; {flag} cannot be "
                        "changed on resume.", hint="Drop it, or start a new run with "
                        f"--config {path / 'config.yaml'}.")
    if run_status(path / "summary.json") == "completed":
        raise UserError(f"--resume {path}: that run has already completed.",
                        hint="Its results are in summary.json.")
    checkpoint = load_checkpoint(path / "last.pt")
    _check_checkpoint(path / "last.pt", checkpoint, command)
    world = D.from_env().world
    if checkpoint.get("world_size", 1) != world:
        raise UserError(f"--resume {path}: the checkpoint was written by "
                        f"{checkpoint.get('world_size', 1)} process(es), this job has {world}. "
                        "Exact resume needs the same world size (every rank's random streams and "
                        "plan shard are in the checkpoint).",
                        hint=f"Relaunch with torchrun --nproc_per_node "
                        f"{checkpoint.get('world_size', 1)} (in total), or start a new run with "
                        f"--config {path / 'config.yaml'}.")
    cfg = load_config(cls, path / "config.yaml", overrides)
    _check_recipe(path / "last.pt", checkpoint, cfg)
    names = [n for n, _ in command.arms(cfg)]
    unknown = [a for a in [checkpoint["arm"], *checkpoint["done"]] if a not in names]
    if unknown:
        raise UserError(f"the checkpoint {path / 'last.pt'} names an arm `{unknown[0][:40]}` "
                        f"that `mixkit {command.name}` with this config does not run "
                        f"({', '.join(names)}).", hint="Restore it from a backup.")
    return cfg, checkpoint
