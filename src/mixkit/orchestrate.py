"""Orchestrate a training command: validate, build the shared cores once, run each arm side by
side from the same starting point, and write the summary.

Both subcommands come through :func:`run`; they differ only in the arms they ask for
(:mod:`mixkit.lineup`). ``summary.json`` is built by :mod:`mixkit.summary`; the checks of
``--resume`` live in :mod:`mixkit.resume_checks`. Every
check that can fail on user input (data present, model name, sizes, batch size) happens before
the run directory is created, so a bad command line leaves nothing behind.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from rich.console import Console

from mixkit.config import dump_yaml
from mixkit.data import DataBundle, DataOptions, load_data
from mixkit.engine import distributed as D
from mixkit.engine.loop import ArmResult, Engine
from mixkit.engine.progress import TrainingProgress
from mixkit.engine.rundir import RunDir, WriteFailed
from mixkit.engine.runtime import Runtime
from mixkit.engine.signals import Interrupted, stop_on_signals
from mixkit.summary import summarize
from mixkit.engine.arm import Arm
from mixkit.engine.callbacks import (CheckpointSaver, MetricsWriter, NonFiniteGuard,
                                     ProgressCallback, StopOnSignal)
from mixkit.engine.events import Callback
from mixkit.errors import RunFailed, UserError, printable
from mixkit.loggers import build_loggers, check_loggers
from mixkit.models import create_model
from mixkit.models.factory import family_of
from mixkit.models.weights import weights_payload
from mixkit.command import ArmFactory, CommandSpec, RunContext
from mixkit.report import speedup_table
from mixkit.resume_checks import recipe_fingerprint, recipe_hash


# Factories of callbacks attached to every arm of every run, after the standard ones and the
# loggers: the seam for code that drives the real command line and observes it (a plugin, the
# DDP test's probe) without editing or patching the engine.
CALLBACKS: list[Callable[[], Callback]] = []


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check(cfg: Any, data: DataBundle) -> None:
    if len(data.train) == 0:            # (the readers refuse this first; a last guard)
        raise UserError(f"the training set of `{data.name}` is empty.",
                        hint="Check the data root (`mixkit datasets`).")
    if cfg.batch_size > len(data.train):
        raise UserError(f"--batch-size {cfg.batch_size} is larger than the training set "
                        f"({len(data.train)} samples of `{data.name}`).",
                        hint=f"Use -b {len(data.train)} or less.")


def default_experiment(command: str, cfg: Any) -> str:
    return f"{command}-{cfg.data}-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare(cfg: Any, command: CommandSpec, dist: D.Dist = D.Dist()) -> RunContext:
    """Everything that can fail on user input, before any file is written."""
    fam = family_of(cfg.model)
    runtime = Runtime.resolve(cfg.device, amp=cfg.amp, amp_dtype=cfg.amp_dtype,
                              channels_last=cfg.channels_last, torchcompile=cfg.torchcompile,
                              compile_mode=cfg.compile_mode,
                              compile_backend=cfg.compile_backend,
                              model_kind=fam.kind if fam is not None else "cnn")
    D.init_process_group(dist, runtime.device)
    data = load_data(cfg.data, replace(DataOptions.from_options(cfg),
                                       channels_last=runtime.channels_last),
                     runtime.device, command.name)
    _check(cfg, data)
    _, info = create_model(cfg.model, data.num_classes, data.img_size, cfg.patch_size,
                           data.spec.native_size)
    ctx = RunContext(cfg, data, runtime, info, dist=dist, command=command)
    if command.setup is not None:
        command.setup(ctx)
    check_loggers(cfg)
    return ctx


def _build(ctx: RunContext, factory: ArmFactory) -> tuple[torch.nn.Module, Arm, Engine]:
    """An arm from the same starting point as every other: seed, fresh model, fresh streams,
    and the engine that trains it."""
    seed_everything(ctx.cfg.seed)
    ctx.data.train.generator.manual_seed(ctx.dist.stream_seed(ctx.cfg.seed))
    model = ctx.new_model()
    arm = factory(ctx)
    arm.extend_model(model)                         # e.g. MixTraining attaches the MAE decoder
    engine = Engine(model, ctx.runtime, ctx.data.train, ctx.data.tasks,
                    batch_size=ctx.cfg.batch_size, dist=ctx.dist, ema=ema_settings(ctx.cfg))
    return model, arm, engine


def standard_callbacks(ctx: RunContext, rundir: RunDir | None, progress: TrainingProgress,
                       done: dict[str, ArmResult], extra: Sequence[Callback] = ()
                       ) -> list[Callback]:
    """Every arm's callbacks, in the order they must run: the non-finite guard first (nothing
    is logged or saved after a bad epoch), then the observers (live view, ``metrics.jsonl``,
    loggers, :data:`CALLBACKS`), then stop-on-signal and the checkpoint saver, which act on what
    the observers did in the same step."""
    recipe = recipe_fingerprint(ctx.cfg)
    out: list[Callback] = [NonFiniteGuard(), ProgressCallback(progress, ctx.cfg.log_interval)]
    if rundir is not None:
        out.append(MetricsWriter(rundir))
    out += [*extra, *(make() for make in CALLBACKS),
            StopOnSignal(ctx.dist, ctx.cfg.log_interval, ctx.runtime.device)]
    if rundir is not None or ctx.dist.enabled:      # every rank: the RNGs are gathered
        out.append(CheckpointSaver(rundir, ctx.dist, {
            "command": ctx.command.name, "config_recipe": recipe,
            "config_hash": recipe_hash(recipe), "data_fingerprint": ctx.data_fingerprint},
            done))
    return out


def run_arm(ctx: RunContext, name: str, factory: ArmFactory, rundir: RunDir | None,
            progress: TrainingProgress, resume: dict[str, Any] | None = None,
            done: dict[str, ArmResult] | None = None,
            callbacks: Sequence[Callback] = ()) -> ArmResult:
    """One arm from the same starting point as every other (:func:`_build`), trained with the
    standard callbacks; with ``resume`` (a checkpoint of this arm) from where it stopped."""
    model, arm, engine = _build(ctx, factory)
    attached = standard_callbacks(ctx, rundir, progress, {} if done is None else done,
                                  callbacks)
    where = str(rundir.checkpoint_path) if rundir is not None else "the checkpoint"
    try:
        result = engine.fit(arm, attached, resume=resume, resume_from=where)
    except Interrupted as stop:
        if rundir is None:
            raise
        launch = (f"torchrun --nproc_per_node {ctx.dist.world} (in total) -m mixkit"
                  if ctx.dist.enabled else "mixkit")
        raise Interrupted(stop.signum, f"{stop}; a resumable checkpoint is saved. Resume "
                          f"with: {launch} {ctx.command.name} --resume {rundir.path}") from None
    if rundir is not None and _keeps_weights(ctx.cfg.save_weights, name,
                                             ctx.command.method_arm):
        for suffix, weights in (("", model), ("-ema", engine.ema and engine.ema.module)):
            if weights is not None:     # ARM.safetensors, ARM-ema.safetensors with --model-ema
                rundir.save_weights(name + suffix, weights_payload(
                    weights, arm=name, model_name=ctx.cfg.model,
                    num_classes=ctx.data.num_classes, img_size=ctx.data.img_size,
                    patch_size=ctx.cfg.patch_size, native_size=ctx.data.spec.native_size))
    return result


def ema_settings(cfg: Any) -> tuple[float, bool] | None:
    """``--model-ema``'s (decay, warm-up) for the engine, or None; every arm gets the same."""
    return (cfg.model_ema_decay, cfg.model_ema_warmup) if cfg.model_ema else None


def _keeps_weights(which: str, arm: str, method_arm: str | None) -> bool:
    """``--save-weights``: ``method`` keeps the command's own arm (its spec's ``method_arm``)."""
    return which == "all" or (which == "method" and arm == method_arm)


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


def check_same_data(cfg: Any, checkpoint: dict[str, Any], fingerprint: str) -> None:
    """The data a resume trains on is the data the run stopped on (checkpoints from before
    fingerprints were kept are not checked)."""
    saved = checkpoint.get("data_fingerprint")
    if saved is not None and saved != fingerprint:
        raise UserError(f"--resume {cfg.resume}: the data changed since the run stopped (its "
                        "files, their number or their labels differ from what the checkpoint "
                        "was trained on); an exact resume needs the same data.",
                        hint="Restore the dataset as it was, or start a new run with "
                        f"--config {Path(cfg.resume) / 'config.yaml'}.")


def _create(cfg: Any, command: CommandSpec, strict: bool, main: bool) -> RunDir | None:
    """Rank 0 alone creates and writes the run directory."""
    if not main:
        return None
    experiment = cfg.experiment or default_experiment(command.name, cfg)
    rundir = RunDir.create(cfg.output, experiment, strict=strict, overwrite=cfg.overwrite)
    rundir.write_config(dump_yaml(cfg))
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
    if checkpoint is not None:
        check_same_data(cfg, checkpoint, ctx.data_fingerprint)
    if checkpoint is None:
        rundir = _create(cfg, command, strict_experiment, dist.main)
    else:
        rundir, results = _open_resumed(cfg, checkpoint, dist.main)
    try:
        return _train(cfg, command, arms, ctx, rundir, results, console, checkpoint)
    except BaseException:
        if rundir is not None and rundir.pristine:  # nothing resumable was written: leave no
            rundir.discard()                # half-made run dir, and give --overwrite's old
        raise                               # run back
    finally:
        if rundir is not None:              # in-process callers (tests, notebooks) run again
            rundir.lock.release()
        ctx.data.close()                    # streamed folders' worker processes
        if ctx.ssl_train is not None:
            ctx.ssl_train.close()


def _train(cfg: Any, command: CommandSpec, arms: list[tuple[str, ArmFactory]],
           ctx: RunContext, rundir: RunDir | None, results: dict[str, ArmResult],
           console: Console, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """Every arm not yet done, then the command's artifacts and ``summary.json``."""
    dist = ctx.dist
    ctx.done = results
    log = _open_log(rundir)
    say = _Say(console, log)
    if dist.main:
        say(f"mixkit {command.name}: {cfg.data} ({len(ctx.data.train)} train / "
            f"{len(ctx.data.val)} val, {ctx.data.img_size}px) · {cfg.model} · "
            f"{ctx.runtime.describe()}"
            + (f" · {dist.world} processes" if dist.enabled else "")
            + f" · run dir {rundir.path}"
            + (f" · resuming `{checkpoint['arm']}` at epoch {checkpoint['epoch'] + 1}"
               if checkpoint else ""))
    try:
        return _train_arms(cfg, command, arms, ctx, rundir, results, say, checkpoint)
    except (Interrupted, UserError, RunFailed) as err:
        if log is not None:                 # the console gets it from the CLI
            log.print(f"stopped: {printable(str(err))}", highlight=False, markup=False)
        raise
    finally:
        if log is not None:
            log.file.close()


def _open_log(rundir: RunDir | None) -> Console | None:
    """``RUN_DIR/log.txt``: the console's lines, plain (rank 0 only)."""
    if rundir is None:
        return None
    return Console(file=rundir.open_log(), width=120, color_system=None, force_terminal=False,
                   force_interactive=False, soft_wrap=True)     # a log line is never wrapped


class _Say:
    """Print to the console and to ``log.txt``."""

    def __init__(self, console: Console, log: Console | None) -> None:
        self.console, self.log = console, log

    def __call__(self, *objects: Any) -> None:
        soft = all(isinstance(o, str) for o in objects)     # a line of text is never wrapped
        objects = tuple(printable(o) if isinstance(o, str) else o for o in objects)
        self.console.print(*objects, highlight=False, soft_wrap=soft)
        if self.log is not None:
            self.log.print(*objects, highlight=False, soft_wrap=soft)


def _train_arms(cfg: Any, command: CommandSpec, arms: list[tuple[str, ArmFactory]],
                ctx: RunContext, rundir: RunDir | None, results: dict[str, ArmResult],
                say: _Say, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    loggers = build_loggers(cfg, rundir.path if rundir is not None else None)
    try:
        return _train_logged(cfg, command, arms, ctx, rundir, results, say, checkpoint,
                             loggers)
    finally:
        for logger in loggers:
            logger.close()


def _train_logged(cfg: Any, command: CommandSpec, arms: list[tuple[str, ArmFactory]],
                  ctx: RunContext, rundir: RunDir | None, results: dict[str, ArmResult],
                  say: _Say, checkpoint: dict[str, Any] | None,
                  loggers: list[Callback]) -> dict[str, Any]:
    dist = ctx.dist
    console = say.console
    try:
        with stop_on_signals(), TrainingProgress(console, enabled=dist.main,
                                                 log=say.log) as progress:
            progress.begin_job([name for name, _ in arms if name not in results])
            warm_up(ctx, arms[0][1], cfg.timing_warmup)
            for name, factory in arms:
                if name in results:
                    continue
                resume = checkpoint if checkpoint and checkpoint["arm"] == name else None
                results[name] = run_arm(ctx, name, factory, rundir, progress, resume,
                                        results, loggers)
        if rundir is None:                  # not rank 0: rank 0 reports; the ranks leave together
            D.barrier()                     # (a rank tearing down gloo while rank 0 still
            return {}                       # writes its summary and figures can abort)
        if command.finish is not None:
            command.finish(ctx, results, rundir)
        summary = summarize(command, ctx, results, rundir)
        summary["weights"] = rundir.weights()
        rundir.write_summary(summary)
        for logger in loggers:
            logger.run_end(summary)
        if not cfg.keep_checkpoint:         # a completed run cannot be resumed: 129 MB freed
            rundir.drop_checkpoint()
    except Interrupted:
        if rundir is not None:
            rundir.write_summary({**summarize(command, ctx, results, rundir),
                                  "status": "interrupted"})
        raise
    except UserError:                   # found mid-run (a streamed file that cannot be decoded)
        if rundir is not None and rundir.pristine:
            rundir.discard()                # nothing was trained: leave no half-made run dir
        elif rundir is not None:
            rundir.write_summary({**summarize(command, ctx, results, rundir),
                                  "status": "failed"})
        raise
    except RunFailed as err:
        if rundir is None or rundir.pristine:   # before the first checkpoint: nothing to keep
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
    say(speedup_table(summary))
    if cfg.plots:
        _plots(rundir, say)
    say(f"run dir: {rundir.path}" + (f" (weights: {', '.join(summary['weights'])})"
                                     if summary["weights"] else ""))
    D.barrier()                             # the other ranks wait here for rank 0's files
    return summary


def _plots(rundir: RunDir, say: _Say) -> None:
    """The run's own figures (``RUN_DIR/plots``); a figure that fails warns, the run stands."""
    from mixkit.report import write_run_plots

    try:
        made = write_run_plots(rundir.path)
        say(f"figures: {rundir.path / 'plots'} ({len(made)})")
    except Exception as exc:  # noqa: BLE001 - the run's results are already written
        say(f"[yellow]warning:[/] the run's figures could not be drawn: {exc}")


def warm_up(ctx: RunContext, factory: ArmFactory, steps: int) -> None:
    """``--timing-warmup`` untimed steps of the first arm on a throwaway model, so one-time
    process costs (thread pools, the allocator, kernel selection) are billed to no arm: without
    it the arm that runs first is the slowest and every speedup is biased by run order. It is
    :meth:`Engine.fit` with no callbacks; every random stream is reseeded by :func:`_build`
    for the real arms afterwards, so results are unchanged."""
    if steps <= 0:
        return
    _, arm, engine = _build(ctx, factory)
    engine.fit(arm, steps=steps)
    ctx.runtime.synchronize()
