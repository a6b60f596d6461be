"""mixkit's commands from Python: the public API behind ``mixkit mixtrain`` and
``mixkit mixtraining`` (semver promise: ``docs/api.md``).

Three levels, each what the command line does, validated the same way (a bad value raises the
same :class:`~mixkit.errors.UserError` the command line prints):

* :func:`run` / :func:`resume` — a whole job into a run directory, returning the :class:`Run`
  that ``mixkit report`` reads;
* :class:`Experiment` — a command's shared cores (data, device, model checks) built once, and
  its arms trained one at a time, each from the same starting point as in a run, with no run
  directory: what a side-by-side benchmark or a notebook sweep needs;
* :func:`load_run` and the report's statistics (:func:`robust_speedup`,
  :func:`seconds_per_input`, :func:`timing_spread`, :func:`best_at_cost`, :func:`mean_sd`) to
  read and pool what runs wrote.

Settings are the command's options by their Python names (``data_fraction=0.1``, not
``--data-fraction``): :func:`options` lists them, :func:`settings` validates a set of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import torch

import mixkit.commands  # noqa: F401  (registers the training commands)
from mixkit.command import COMPARISONS, ArmFactory, CommandSpec, command_spec
from mixkit.engine.events import Callback
from mixkit.engine.loop import ArmResult
from mixkit.engine.signals import Interrupted
from mixkit.errors import UserError
from mixkit.options import build_config, field_types, flag_of, recipe_dict
from mixkit.plots import colour as arm_colour, pareto as pareto_figure
from mixkit.run_reader import Run, load_run, mean_sd
from mixkit.runio.progress import TrainingProgress
from mixkit.runio.rundir import RunDir
from mixkit.summary import NOISY, best_at_cost, robust_speedup, seconds_per_input, timing_spread

__all__ = ["Experiment", "Settings", "run", "resume", "settings", "options", "OptionInfo", "Run",
           "load_run", "ArmResult", "Callback", "robust_speedup", "seconds_per_input",
           "timing_spread", "best_at_cost", "mean_sd", "NOISY", "arm_colour", "pareto_figure",
           "Interrupted", "TrainArrays"]


@dataclass(frozen=True)
class OptionInfo:
    """One option of a command, as the command line shows it (``mixkit COMMAND --help``)."""

    name: str                   # the Python name (``data_fraction``)
    flag: str                   # the command line's (``--data-fraction``)
    short: str | None           # ``-b``, or None
    type: type                  # bool, int, float or str
    choices: tuple[str, ...] | None
    default: Any
    help: str
    per_experiment: bool        # False: where a run goes and what it overwrites (not a setting
                                # a benchmark varies: --output, --overwrite, --resume...)


def options(command: str) -> list[OptionInfo]:
    """Every option of ``command`` (``"mixtrain"``, ``"mixtraining"``), in the help's order."""
    cls = command_spec(command).config_cls
    types = field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        choices = f.metadata.get("choices")
        out.append(OptionInfo(f.name, flag_of(f.name), f.metadata.get("short"),
                              types[f.name][0], tuple(choices) if choices else None, default,
                              f.metadata["help"], bool(f.metadata["bench"])))
    return out


class Settings(Mapping[str, Any]):
    """A command's validated settings, read-only: ``s["lr"]`` or ``s.lr``.

    As a mapping it holds the options themselves (``Experiment(command, **s)`` takes them
    back); the values a command derives from them (``sl_lr``, ``compare_arms``) are readable
    as attributes too, but are not options and are not passed on. :meth:`replace` derives new
    settings, validated."""

    def __init__(self, command: str, options: dict[str, Any], derived: dict[str, Any]) -> None:
        self.command = command
        self._options, self._derived = dict(options), dict(derived)

    def replace(self, **changes: Any) -> "Settings":
        """These settings with ``changes``, validated (``dataclasses.replace``'s shape)."""
        return settings(self.command, **{**self._options, **changes})

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._options:
            return self._options[name]
        if name in self._derived:
            return self._derived[name]
        raise AttributeError(f"no setting {name!r}")

    def __repr__(self) -> str:
        return f"Settings({self._options!r})"


def _of(command: str, cfg: Any) -> Settings:
    """The public view of a command's config object: its options, and its derived values
    (the config class's properties)."""
    derived = {name: getattr(cfg, name) for name, v in vars(type(cfg)).items()
               if isinstance(v, property) and not name.startswith("_")}
    return Settings(command, recipe_dict(cfg), derived)


def _build(command: str, values: Mapping[str, Any]) -> Any:
    spec = command_spec(command)
    return build_config(spec.config_cls, dict(values), where=f"mixkit.experiment ({command})")


def settings(command: str, /, **values: Any) -> Settings:
    """``command``'s validated settings: its defaults with ``values`` on top, checked and
    resolved exactly as the command line does it (``opt="sgd"`` picks SGD's recipe defaults,
    ...). Raises ``UserError`` naming the bad value. Derive from earlier settings with
    ``earlier.replace(seed=1)``."""
    return _of(command, _build(command, values))


def run(command: str, /, *, callbacks: Sequence[Callable[[], Callback]] = (),
        **values: Any) -> Run:
    """Run ``command`` as ``mixkit COMMAND`` would, into ``output``/``experiment`` (both
    options; ``experiment`` defaults to a time-stamped name), and return the run it wrote.

    ``callbacks``: factories of engine callbacks attached to every arm (``docs/engine.md``)."""
    from mixkit import orchestrate

    cfg = _build(command, values)
    summary = orchestrate.run(cfg, command_spec(command), callbacks=callbacks,
                              strict_experiment="experiment" in values)
    return load_run(Path(summary["run_dir"]))


def resume(path: str | Path, /, *, callbacks: Sequence[Callable[[], Callback]] = ()) -> Run:
    """Continue a stopped run directory (``mixkit COMMAND --resume PATH``) and return the run.
    Raises ``UserError`` for a run that completed, changed, or is not a run directory."""
    from mixkit import orchestrate
    from mixkit.resume_checks import resume_config

    path = Path(path)
    command = _command_of(path)
    spec = command_spec(command)
    cfg, checkpoint = resume_config(spec.config_cls, spec, {"resume": str(path)})
    orchestrate.run(cfg, spec, strict_experiment=True, checkpoint=checkpoint,
                    callbacks=callbacks)
    return load_run(path)


def _command_of(path: Path) -> str:
    """The command that wrote ``path``: its checkpoint says (``load_run`` reads finished runs)."""
    from mixkit.runio.files import load_checkpoint

    if not (path / "last.pt").is_file():
        raise UserError(f"{path} has no last.pt: there is nothing to resume.",
                        hint="Pass the OUTPUT/EXPERIMENT directory of a stopped run.")
    command = load_checkpoint(path / "last.pt").get("command")
    if not isinstance(command, str):
        raise UserError(f"{path / 'last.pt'} does not say which command wrote it.",
                        hint="Resume it with `mixkit COMMAND --resume PATH`.")
    return command


class TrainArrays(NamedTuple):
    """A training set in memory: what the data core holds before it augments and normalises."""

    images: torch.Tensor        # uint8 (N, C, H, W), at the training image size
    labels: torch.Tensor        # int64 (N,)
    mean: torch.Tensor          # float (C,), 0-1 scale: x_normalised = (x/255 - mean) / std
    std: torch.Tensor
    hflip: bool                 # whether the data core flips it (not for digits-like data)


class Experiment:
    """A command's shared cores, built once, and its arms trained one by one on them.

    Each :meth:`train` starts from the same point as in ``mixkit COMMAND``: the seed, fresh
    initial weights, fresh data and augmentation streams; so an arm trained here alone gives the
    same weights as the same arm in a run, and arms trained in any order give the same results
    (only their seconds move with the host). Nothing is written unless :meth:`write_artifacts`
    is called::

        with Experiment("mixtrain", data="fashionmnist", epochs=30, seed=0) as exp:
            exp.warm_up("baseline")
            base = exp.train("baseline")
            cut = exp.train("mixtrain")                 # the settings' op
            mix = exp.train("mixtrain", op="mixup")     # settings for this arm only
            short = exp.train("short", match=cut)       # a --compare arm, matched to CutMix
            print(base.train_seconds / cut.train_seconds, cut.accuracy - base.accuracy)
    """

    def __init__(self, command: str, /, *, progress: bool = False, **values: Any) -> None:
        from mixkit import orchestrate

        self.command: CommandSpec = command_spec(command)
        self._cfg = _build(command, values)
        self.settings: Settings = _of(command, self._cfg)
        self._ctx = orchestrate.prepare(self._cfg, self.command)
        self._progress = TrainingProgress(enabled=progress)
        self.results: dict[str, ArmResult] = {}     # by arm name, as trained

    # -- what it holds ------------------------------------------------------------------------

    @property
    def arms(self) -> list[str]:
        """The arms :meth:`train` takes: the command's line-up, then (for a command with a
        method arm) every registered comparison arm."""
        comparisons = list(COMPARISONS) if self.command.method_arm else []
        return list(self._lineup(self._cfg)) + comparisons

    def describe(self) -> str:
        """The device and its settings, as a run's header and ``summary.json`` give them."""
        return self._ctx.runtime.describe()

    @property
    def device(self) -> torch.device:
        """Where the arms train (``--device``, resolved)."""
        return self._ctx.runtime.device

    @property
    def num_classes(self) -> int:
        return self._ctx.data.num_classes

    @property
    def img_size(self) -> int:
        """The side of the images the arms train on (after ``--img-size``)."""
        return self._ctx.data.img_size

    def train_arrays(self) -> TrainArrays:
        """The in-memory training set as a user's own loop would take it (for a dataset
        streamed from files, a ``UserError``)."""
        data = self._ctx.data
        train = data.train
        if not hasattr(train, "images"):
            raise UserError(f"`{self._cfg.data}` is streamed from files; it has no in-memory "
                            "arrays.", hint="Use an in-memory dataset (mixkit datasets).")
        return TrainArrays(train.images.cpu(), train.labels.cpu(), train.prep.mean.cpu(),
                           train.prep.std.cpu(), bool(data.hflip))

    def input_batches(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled training epoch of the data core alone, as the engine's step receives
        it: ``(x, y)`` on the device, augmented and normalised. For timing the input pipeline
        without a model (is a run input-bound?)."""
        from mixkit.data.plan import shuffled

        train, gen = self._ctx.data.train, torch.Generator().manual_seed(self._cfg.seed)
        for b in train.batches(shuffled(len(train), gen), self._cfg.batch_size, 0, epoch):
            yield b.x, b.y

    # -- training -----------------------------------------------------------------------------

    def train(self, arm: str, /, *, match: ArmResult | None = None,
              callbacks: Sequence[Callback] = (), **values: Any) -> ArmResult:
        """Train ``arm`` (one of :attr:`arms`) from the run's starting point and return its
        result (accuracy, seconds, inputs, per-epoch rows).

        ``values``: settings for this arm only (``op="mixup"``, ``epochs=1``), validated; they
        replace the experiment's resolved values, so a value the command derives from another
        (``--opt``'s default ``lr``) stays the experiment's unless given too.
        ``match``: for a comparison arm, the method's result it is matched to (default: the
        last result of the command's method arm trained here)."""
        from mixkit import orchestrate

        cfg = _build(self.command.name, {**self.settings, **values}) if values else self._cfg
        factory = self._factory(arm, cfg)
        method = self.command.method_arm
        done = dict(self.results)
        if match is not None and method is not None:
            done[method] = match
        if arm in COMPARISONS and arm not in self._lineup(cfg) and method not in done:
            raise UserError(f"`{arm}` is matched to the `{method}` arm's cost: train "
                            f"`{method}` first, or pass match=<its ArmResult>.")
        self._ctx.cfg, self._ctx.done = cfg, done
        try:
            result = orchestrate.run_arm(self._ctx, arm, factory, None, self._progress,
                                         done=done, callbacks=callbacks)
        finally:
            self._ctx.cfg, self._ctx.done = self._cfg, self.results
        self.results[arm] = result
        return result

    def warm_up(self, arm: str, steps: int | None = None) -> None:
        """``steps`` (default ``timing_warmup``) untimed steps of ``arm`` on a throwaway model,
        so one-time process costs are billed to no arm (``docs/engine.md``, timing)."""
        from mixkit import orchestrate

        orchestrate.warm_up(self._ctx, self._factory(arm, self._cfg),
                            self._cfg.timing_warmup if steps is None else steps)

    def write_artifacts(self, path: str | Path) -> None:
        """The command's end-of-run files for the arms trained so far (MixTraining's
        ``reconstruction.png``), into the directory ``path`` (created if missing)."""
        if self.command.finish is None:
            return
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.command.finish(self._ctx, dict(self.results), RunDir(out))

    def _lineup(self, cfg: Any) -> dict[str, ArmFactory]:
        """The command's own arms, baseline(s) included, without ``--compare`` ones."""
        full = {**recipe_dict(cfg), "baseline": True}
        if "compare" in full:
            full["compare"] = ""
        return dict(self.command.arms(_build(self.command.name, full)))

    def _factory(self, arm: str, cfg: Any) -> ArmFactory:
        lineup = self._lineup(cfg)
        if arm in lineup:
            return lineup[arm]
        if self.command.method_arm and arm in COMPARISONS:
            return COMPARISONS[arm].factory
        raise UserError(f"`{arm}` is not an arm of `mixkit {self.command.name}`; its arms: "
                        f"{', '.join(self.arms)}.")

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the data core's worker processes (a streamed folder's)."""
        from mixkit import orchestrate

        orchestrate.close_data(self._ctx)

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
