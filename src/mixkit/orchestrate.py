"""Orchestrate a training command: validate, build the shared cores once, run each arm side by
side from the same starting point, and write the summary.

Both subcommands come through :func:`run`; they differ only in the arms they ask for
(:mod:`mixkit.commands`). ``summary.json`` is built by :mod:`mixkit.summary`; the checks of
``--resume`` live in :mod:`mixkit.resume_checks`. Every
check that can fail on user input (data present, model name, sizes, batch size) happens before
the run directory is created, so a bad command line leaves nothing behind.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from rich.console import Console

from mixkit.options import dump_yaml, recipe_dict
from mixkit.data import DataBundle, DataOptions, load_data
from mixkit.engine import distributed as D
from mixkit.engine.loop import ArmResult, Engine
from mixkit.runio.progress import TrainingProgress
from mixkit.runio.rundir import RunDir, WriteFailed
from mixkit.engine.runtime import Runtime
from mixkit.engine.signals import Interrupted, stop_on_signals
from mixkit.summary import summarize
from mixkit.engine.arm import Arm
from mixkit.runio.callbacks import (CheckpointSaver, MetricsWriter, NonFiniteGuard,
                                     ProgressCallback, StopOnSignal)
from mixkit.engine.events import Callback
from mixkit.errors import RunFailed, UserError, printable
from mixkit.runio.loggers import LoggerSettings, build_loggers, check_loggers
from mixkit.models import create_model
from mixkit.models.factory import family_of
from mixkit.models.weights import weights_payload
from mixkit.command import ArmFactory, CommandSpec, RunContext
from mixkit.report import speedup_table
from mixkit.resume_checks import recipe_fingerprint, recipe_hash


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
    check_loggers(logger_settings(cfg))
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
    the loggers and the caller's ``extra``), then stop-on-signal and the checkpoint saver,
    which act on what the observers did in the same step."""
    recipe = recipe_fingerprint(ctx.cfg)
    out: list[Callback] = [NonFiniteGuard(), ProgressCallback(progress, ctx.cfg.log_interval)]
    if rundir is not None:
        out.append(MetricsWriter(rundir))
    out += [*extra, StopOnSignal(ctx.dist, ctx.cfg.log_interval, ctx.runtime.device)]
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


def logger_settings(cfg: Any) -> LoggerSettings:
    return LoggerSettings(cfg.log_tensorboard, cfg.log_wandb, cfg.wandb_project, cfg.wandb_mode)


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
        console: Console | None = None, checkpoint: dict[str, Any] | None = None,
        callbacks: Sequence[Callable[[], Callback]] = ()) -> dict[str, Any]:
    """Run ``command``'s arms on ``cfg`` side by side and write the run directory.

    ``checkpoint``: a ``last.pt`` to continue (``--resume``). ``callbacks``: factories of
    callbacks attached to every arm after the standard ones and the loggers (a plugin, a test's
    probe, the DDP test's tracer); the untimed warm-up gets none. Every resource the run opens
    (the data's worker processes, the run directory's lock, ``log.txt``, the loggers, the
    signal handlers, the live view) is closed by one :class:`~contextlib.ExitStack`, in reverse
    order, however the run ends."""
    if console is None:                 # logs (not a terminal) get a table that fits, not 80 cols
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    arms = command.arms(cfg)
    if not arms:
        raise UserError(f"nothing to run: `mixkit {command.name}` with --no-baseline has no "
                        "arm left.", hint="Drop --no-baseline.")
    dist = D.from_env()
    with ExitStack() as stack:
        stack.callback(D.destroy)
        ctx = prepare(cfg, command, dist)
        stack.callback(close_data, ctx)
        if checkpoint is not None:
            check_same_data(cfg, checkpoint, ctx.data_fingerprint)
            rundir, ctx.done = _open_resumed(cfg, checkpoint, dist.main)
        else:
            rundir, ctx.done = _create(cfg, command, strict_experiment, dist.main), {}
        if rundir is not None:              # in-process callers (tests, notebooks) run again
            stack.callback(rundir.lock.release)
        log = _open_log(rundir)
        if log is not None:
            stack.callback(log.file.close)
        say = _Say(console, log)
        try:
            _announce(say, cfg, command, ctx, rundir, checkpoint)
            loggers = build_loggers(logger_settings(cfg),
                                    rundir.path if rundir is not None else None, recipe_dict(cfg))
            for logger in loggers:
                stack.callback(logger.close)
            _train_arms(ctx, arms, rundir, say, checkpoint,
                        [*loggers, *(make() for make in callbacks)])
            if rundir is None:              # not rank 0: rank 0 reports; the ranks leave together
                D.barrier()                 # (a rank tearing down gloo while rank 0 still
                return {}                   # writes its summary and figures can abort)
            summary = _finish(ctx, rundir, loggers)
        except BaseException as err:
            _record_stop(err, ctx, rundir, log)
            raise
        say(speedup_table(summary))
        if cfg.plots:
            _plots(rundir, say)
        say(f"run dir: {rundir.path}" + (f" (weights: {', '.join(summary['weights'])})"
                                         if summary["weights"] else ""))
        D.barrier()                         # the other ranks wait here for rank 0's files
        return summary


def close_data(ctx: RunContext) -> None:
    """The streamed folders' worker processes (the data and MixTraining's --ssl-data)."""
    ctx.data.close()
    if ctx.ssl_train is not None:
        ctx.ssl_train.close()


def _announce(say: "_Say", cfg: Any, command: CommandSpec, ctx: RunContext,
              rundir: RunDir | None, checkpoint: dict[str, Any] | None) -> None:
    """The run's first line: data, model, device, processes, run dir, where it resumes."""
    if not ctx.dist.main:
        return
    say(f"mixkit {command.name}: {cfg.data} ({len(ctx.data.train)} train / "
        f"{len(ctx.data.val)} val, {ctx.data.img_size}px) · {cfg.model} · "
        f"{ctx.runtime.describe()}"
        + (f" · {ctx.dist.world} processes" if ctx.dist.enabled else "")
        + f" · run dir {rundir.path}"
        + (f" · resuming `{checkpoint['arm']}` at epoch {checkpoint['epoch'] + 1}"
           if checkpoint else ""))


def _train_arms(ctx: RunContext, arms: list[tuple[str, ArmFactory]], rundir: RunDir | None,
                say: "_Say", checkpoint: dict[str, Any] | None,
                extra: Sequence[Callback]) -> None:
    """Every arm not yet done (into ``ctx.done``), under the signal handlers and the live
    view, both released before the summary is printed."""
    results = ctx.done
    with stop_on_signals(), TrainingProgress(say.console, enabled=ctx.dist.main,
                                             log=say.log) as progress:
        progress.begin_job([name for name, _ in arms if name not in results])
        warm_up(ctx, arms[0][1], ctx.cfg.timing_warmup)
        for name, factory in arms:
            if name in results:
                continue
            resume = checkpoint if checkpoint and checkpoint["arm"] == name else None
            results[name] = run_arm(ctx, name, factory, rundir, progress, resume, results,
                                    extra)


def _finish(ctx: RunContext, rundir: RunDir, loggers: Sequence[Callback]) -> dict[str, Any]:
    """After every arm: the command's artifacts, ``summary.json``, the loggers' summaries,
    and ``last.pt`` dropped (a completed run cannot be resumed: up to 129 MB freed)."""
    command, results = ctx.command, ctx.done
    if command.finish is not None:
        command.finish(ctx, results, rundir)
    summary = summarize(command, ctx, results, rundir)
    summary["weights"] = rundir.weights()
    rundir.write_summary(summary)
    for logger in loggers:
        logger.run_end(summary)
    if not ctx.cfg.keep_checkpoint:
        rundir.drop_checkpoint()
    return summary


def _record_stop(err: BaseException, ctx: RunContext, rundir: RunDir | None,
                 log: Console | None) -> None:
    """What a run that did not finish leaves behind, by how it ended:

    * nothing resumable written yet (no checkpoint): the run dir is removed and the old run
      ``--overwrite`` set aside is put back;
    * a signal: ``summary.json`` says ``interrupted`` (the checkpoint is saved at the step);
    * a user error found mid-run (an undecodable streamed file): ``failed``;
    * a run fault (a non-finite loss, a full disk): ``failed`` with the error, where the disk
      still allows the write.

    ``log.txt`` gets the stop's paragraph (the console gets it from the CLI)."""
    known = isinstance(err, (Interrupted, UserError, RunFailed))
    if log is not None and known:
        log.print(f"stopped: {printable(str(err))}", highlight=False, markup=False)
    if rundir is None:
        return
    if rundir.pristine:
        rundir.discard()
        return
    if not known:
        return
    status = {"status": "interrupted"} if isinstance(err, Interrupted) else (
        {"status": "failed"} if isinstance(err, UserError) else
        {"status": "failed", "error": str(err)})
    try:                                    # a full disk may refuse this too: the message stays
        rundir.write_summary({**summarize(ctx.command, ctx, ctx.done, rundir), **status})
    except WriteFailed:
        if not isinstance(err, RunFailed):
            raise
    if isinstance(err, WriteFailed):
        raise WriteFailed(f"{err} Free some space, then continue with `mixkit "
                          f"{ctx.command.name} --resume {rundir.path}`.") from None


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
