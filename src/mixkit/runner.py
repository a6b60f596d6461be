"""Run a training command: validate, build the shared cores, run each arm, write the summary.

Both subcommands come through :func:`run`; they differ only in the arms they ask for. Every
check that can fail on user input (data present, model name, sizes, batch size) happens before
the run directory is created, so a bad command line leaves nothing behind.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.console import Console

import mixkit
from mixkit.data import DataBundle, load_data
from mixkit.config import load_config, recipe_dict
from mixkit.engine import distributed as D
from mixkit.engine.checkpoint import load_checkpoint
from mixkit.engine.loop import Arm, ArmResult, Engine
from mixkit.engine.progress import TrainingProgress
from mixkit.engine.rundir import RunDir, WriteFailed
from mixkit.engine.signals import Interrupted, stop_on_signals
from mixkit.engine.runtime import Runtime
from mixkit.errors import RunFailed, UserError
from mixkit.models import ModelInfo, create_model
from mixkit.models.factory import family_of
from mixkit.report import speedup_table


@dataclass
class RunContext:
    """What an arm factory may use: the config and the shared cores, built once per run."""

    cfg: Any
    data: DataBundle
    runtime: Runtime
    model_info: ModelInfo
    extras: dict[str, Any] = field(default_factory=dict)   # what a command's setup loaded
    dist: D.Dist = D.Dist()                                  # this process's rank (torchrun)

    def new_model(self) -> torch.nn.Module:
        """A freshly initialised model (from the global RNG: seed first)."""
        return create_model(self.cfg.model, self.data.num_classes, self.data.img_size,
                            self.cfg.patch_size, self.data.spec.native_size)[0]

    def plan_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed)


ArmFactory = Callable[[RunContext], Arm]


@dataclass
class CommandSpec:
    """A training command: its arms, which one is the method and which the baseline."""

    name: str
    arms: Callable[[Any], list[tuple[str, ArmFactory]]]
    method_arm: str | None
    baseline_arm: str
    # arms the method's accuracy gain is reported against (default: the baseline arm)
    compare_arms: tuple[str, ...] = ()
    # method-specific input checks and loading, before the run dir exists (UserError -> exit 2)
    setup: Callable[[RunContext], None] | None = None
    # the method's own summary entries (e.g. MixTraining's schedule)
    describe: Callable[[RunContext], dict[str, Any]] | None = None
    # after every arm: artifacts such as plots, written into the run dir
    finish: Callable[[RunContext, dict[str, ArmResult], RunDir], None] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check(cfg: Any, data: DataBundle) -> None:
    if cfg.batch_size > len(data.train):
        raise UserError(f"--batch-size {cfg.batch_size} is larger than the training set "
                        f"({len(data.train)} samples of `{data.name}`).",
                        hint=f"Use -b {len(data.train)} or less.")


def default_experiment(command: str, cfg: Any) -> str:
    return f"{command}-{cfg.data}-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare(cfg: Any, command: CommandSpec, dist: D.Dist = D.Dist()) -> RunContext:
    """Everything that can fail on user input, before any file is written."""
    fam = family_of(cfg.model)
    runtime = Runtime.from_config(cfg, fam.kind if fam is not None else "cnn")
    D.init_process_group(dist, runtime.device)
    data = load_data(cfg.data, replace(cfg, channels_last=runtime.channels_last),
                     runtime.device, command.name)
    _check(cfg, data)
    _, info = create_model(cfg.model, data.num_classes, data.img_size, cfg.patch_size,
                           data.spec.native_size)
    ctx = RunContext(cfg, data, runtime, info, dist=dist)
    if command.setup is not None:
        command.setup(ctx)
    return ctx


def run_arm(ctx: RunContext, name: str, factory: ArmFactory, rundir: RunDir | None,
            progress: TrainingProgress, resume: dict[str, Any] | None = None,
            done: dict[str, ArmResult] | None = None, command: str = "") -> ArmResult:
    """One arm from the same starting point as every other: seed, fresh model, fresh streams.

    With ``resume`` (a checkpoint of this arm) the engine then restores the state it saved.
    """
    seed_everything(ctx.cfg.seed)
    ctx.data.train.generator.manual_seed(ctx.dist.stream_seed(ctx.cfg.seed))
    model = ctx.new_model()
    arm = factory(ctx)
    extend = getattr(arm, "extend_model", None)     # e.g. MixTraining attaches the MAE decoder
    if extend is not None:
        extend(model)
    launch = (f"torchrun --nproc_per_node {ctx.dist.world} (in total) -m mixkit"
              if ctx.dist.enabled else "mixkit")
    hint = f"Resume with: {launch} {command} --resume {rundir.path}" if rundir else ""
    engine = Engine(model, ctx.runtime, ctx.data.train, ctx.data.tasks,
                    batch_size=ctx.cfg.batch_size, log_interval=ctx.cfg.log_interval,
                    progress=progress, rundir=rundir, done=done, resume_hint=hint,
                    meta={"command": command, "config_recipe": recipe_fingerprint(ctx.cfg)},
                    dist=ctx.dist)
    return engine.train_arm(arm, resume)


def summarize(command: CommandSpec, ctx: RunContext, results: dict[str, ArmResult],
              rundir: RunDir) -> dict[str, Any]:
    method = results.get(command.method_arm or "")
    base = results.get(command.baseline_arm)
    both = method is not None and base is not None
    return {
        "command": command.name,
        "status": "completed",
        "experiment": rundir.path.name,
        "run_dir": str(rundir.path),
        "data": ctx.cfg.data,
        "model": ctx.cfg.model,
        "seed": ctx.cfg.seed,
        "world_size": ctx.dist.world,
        "device": ctx.runtime.describe(),
        "method_arm": command.method_arm,
        "baseline_arm": command.baseline_arm,
        "compare_arms": [a for a in (command.compare_arms or (command.baseline_arm,))
                         if a in results],
        "arms": {n: _arm_summary(r) for n, r in results.items()},
        **(command.describe(ctx) if command.describe is not None else {}),
        "speedup": base.train_seconds / method.train_seconds if both else None,
        "accuracy_delta": method.accuracy - base.accuracy if both else None,
        "versions": {"mixkit": mixkit.__version__, "torch": torch.__version__,
                     "timm": __import__("timm").__version__},
    }


def _arm_summary(r: ArmResult) -> dict[str, Any]:
    out = {"accuracy": r.accuracy, "train_seconds": r.train_seconds, "inputs": r.inputs,
           "samples": r.samples, "epochs": r.epochs,
           "phase_seconds": _phase_seconds(r.rows)}
    if r.task_accuracy:
        out["task_accuracy"] = r.task_accuracy
    return out


def _phase_seconds(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Training seconds per phase (``sl``, ``ssl``, ``mix``): where an arm's time went."""
    out: dict[str, float] = {}
    for r in rows:
        out[r["phase"]] = out.get(r["phase"], 0.0) + r["epoch_seconds"]
    return out


RESUMABLE = {"resume", "device", "log_interval", "workers", "data_dir", "download",
             "timing_warmup"}
COMMANDS = ("mixtrain", "mixtraining")
# what a checkpoint must hold, and of which type, before anything in it is trusted
CHECKPOINT_KEYS = {"command": str, "arm": str, "epoch": int, "batch": int, "rows": list,
                   "ranks": list, "done": dict, "model": dict, "world_size": int}


def recipe_fingerprint(cfg: Any) -> dict[str, Any]:
    """The part of a config a resume must not change (everything but where it runs)."""
    return {k: v for k, v in recipe_dict(cfg).items() if k not in RESUMABLE}


def _check_checkpoint(path: Path, ckpt: dict[str, Any], command: CommandSpec) -> None:
    """A checkpoint's structure, before any of it is used: a crafted or foreign file is an
    exit-2 message, never a KeyError deep in the restore."""
    for key, tp in CHECKPOINT_KEYS.items():
        if not isinstance(ckpt.get(key), tp) or isinstance(ckpt.get(key), bool):
            raise UserError(f"the checkpoint {path} is not a complete mixkit checkpoint "
                            f"(`{key}` is missing or not a {tp.__name__}).",
                            hint="Restore it from a backup, or start a new run with "
                            f"--config {path.parent / 'config.yaml'}.")
    if ckpt["command"] not in COMMANDS:
        raise UserError(f"the checkpoint {path} names an unknown command "
                        f"`{str(ckpt['command'])[:40]}`.", hint="Restore it from a backup.")
    if ckpt["command"] != command.name:
        launch = (f"torchrun --nproc_per_node {ckpt['world_size']} -m mixkit"
                  if ckpt["world_size"] > 1 else "mixkit")
        raise UserError(f"--resume {path.parent} is a `mixkit {ckpt['command']}` run, not "
                        f"`mixkit {command.name}`.",
                        hint=f"Run {launch} {ckpt['command']} --resume {path.parent}.")


def _check_recipe(path: Path, ckpt: dict[str, Any], cfg: Any) -> None:
    """``config.yaml`` must still describe the run the checkpoint belongs to."""
    saved = ckpt.get("config_recipe")
    if not isinstance(saved, dict):          # written before checkpoints kept the recipe
        return
    now = recipe_fingerprint(cfg)
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in differ[:4])
        raise UserError(f"--resume {path.parent}: config.yaml no longer matches the run its "
                        f"checkpoint belongs to ({shown}); an exact resume needs the recipe "
                        "it started with.",
                        hint="Restore config.yaml, or start a new run with the edited file "
                        f"(mixkit ... --config {path.parent / 'config.yaml'}).")


def resume_config(cls: type, command: CommandSpec,
                  overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The saved config and last checkpoint of ``--resume RUN_DIR``, or a UserError."""
    path = Path(overrides["resume"])
    if not (path / "config.yaml").is_file():
        raise UserError(f"--resume {path} is not a mixkit run directory (no config.yaml).",
                        hint="Pass the OUTPUT/EXPERIMENT directory of a stopped run.")
    changed = sorted(set(overrides) - RESUMABLE)
    if changed:
        flag = "--" + changed[0].replace("_", "-")
        raise UserError(f"--resume continues a run with its saved config; {flag} cannot be "
                        "changed on resume.", hint="Drop it, or start a new run with "
                        f"--config {path / 'config.yaml'}.")
    if _status(path / "summary.json") == "completed":
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


def _status(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _open_resumed(cfg: Any, checkpoint: dict[str, Any],
                  main: bool) -> tuple[RunDir | None, dict[str, ArmResult]]:
    """The run dir of a resumed run, its metrics cut back to what the checkpoint holds."""
    done = {n: ArmResult.from_rows(n, d["epochs"], d["rows"], d["artifacts"])
            for n, d in checkpoint["done"].items()}
    if not main:
        return None, done
    rundir = RunDir.reopen(Path(cfg.resume))
    rundir.reset_rows([r for res in done.values() for r in res.rows] + checkpoint["rows"])
    return rundir, done


def _create(cfg: Any, command: CommandSpec, strict: bool, main: bool) -> RunDir | None:
    """Rank 0 alone creates and writes the run directory."""
    if not main:
        return None
    experiment = cfg.experiment or default_experiment(command.name, cfg)
    rundir = RunDir.create(cfg.output, experiment, strict=strict, overwrite=cfg.overwrite)
    rundir.write_config(cfg)
    return rundir


def run(cfg: Any, command: CommandSpec, *, strict_experiment: bool,
        console: Console | None = None,
        checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    if console is None:                 # logs (not a terminal) get a table that fits, not 80 cols
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    arms = command.arms(cfg)
    if not arms:
        raise UserError(f"nothing to run: `mixkit {command.name}` with --no-baseline has no "
                        "arm left.", hint="Drop --no-baseline.")
    try:
        return _run(cfg, command, arms, strict_experiment, console, checkpoint)
    finally:
        D.destroy()


def _run(cfg: Any, command: CommandSpec, arms: list[tuple[str, ArmFactory]],
         strict_experiment: bool, console: Console,
         checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    dist = D.from_env()
    ctx = prepare(cfg, command, dist)
    results: dict[str, ArmResult] = {}
    if checkpoint is None:
        rundir = _create(cfg, command, strict_experiment, dist.main)
    else:
        rundir, results = _open_resumed(cfg, checkpoint, dist.main)
    if dist.main:
        console.print(f"mixkit {command.name}: {cfg.data} ({len(ctx.data.train)} train / "
                      f"{len(ctx.data.val)} val, {ctx.data.img_size}px) · {cfg.model} · "
                      f"{ctx.runtime.describe()}"
                      + (f" · {dist.world} processes" if dist.enabled else "")
                      + f" · run dir {rundir.path}"
                      + (f" · resuming `{checkpoint['arm']}` at epoch {checkpoint['epoch'] + 1}"
                         if checkpoint else ""), highlight=False)
    try:
        with stop_on_signals(), TrainingProgress(console, enabled=dist.main) as progress:
            warm_up(ctx, arms[0][1], cfg.timing_warmup)
            for name, factory in arms:
                if name in results:
                    continue
                resume = checkpoint if checkpoint and checkpoint["arm"] == name else None
                results[name] = run_arm(ctx, name, factory, rundir, progress, resume,
                                        results, command.name)
        if rundir is None:                  # not rank 0: rank 0 reports
            return {}
        if command.finish is not None:
            command.finish(ctx, results, rundir)
        summary = summarize(command, ctx, results, rundir)
        rundir.write_summary(summary)
    except Interrupted:
        if rundir is not None:
            rundir.write_summary({**summarize(command, ctx, results, rundir),
                                  "status": "interrupted"})
        raise
    except UserError:                   # found mid-run (a streamed file that cannot be decoded)
        if rundir is not None and checkpoint is None and not rundir.rows:
            rundir.discard()                # nothing was trained: leave no half-made run dir
        elif rundir is not None:
            rundir.write_summary({**summarize(command, ctx, results, rundir),
                                  "status": "failed"})
        raise
    except RunFailed as err:
        if rundir is None:
            raise
        try:                                # a full disk may refuse this too: the message stays
            rundir.write_summary({**summarize(command, ctx, results, rundir),
                                  "status": "failed", "error": str(err)})
        except WriteFailed:
            pass
        if isinstance(err, WriteFailed):
            raise WriteFailed(f"{err} Free some space, then continue with `mixkit "
                              f"{command.name} --resume {rundir.path}`.") from None
        raise
    console.print(speedup_table(summary))
    return summary


def warm_up(ctx: RunContext, factory: ArmFactory, steps: int) -> None:
    """``--timing-warmup`` untimed steps of the first arm on a throwaway model, so one-time
    process costs (thread pools, the allocator, kernel selection) are billed to no arm: without
    it the arm that runs first is the slowest and every speedup is biased by run order. Every
    random stream is reseeded by :func:`run_arm` afterwards, so results are unchanged."""
    if steps <= 0:
        return
    seed_everything(ctx.cfg.seed)
    model = ctx.new_model()
    arm = factory(ctx)
    extend = getattr(arm, "extend_model", None)
    if extend is not None:
        extend(model)
    engine = Engine(model, ctx.runtime, ctx.data.train, ctx.data.tasks,
                    batch_size=ctx.cfg.batch_size, log_interval=ctx.cfg.log_interval,
                    progress=TrainingProgress(enabled=False), dist=ctx.dist)
    engine.warm_up(arm, steps)
