"""A training command as data: :class:`CommandSpec` (its arms, which is the method and which
the baseline) and :class:`RunContext` (what an arm factory may use). Shared by the command
layer's modules (``commands``, ``orchestrate``, ``summary``, ``resume_checks``) so none of
them needs another's internals, and nothing imports in a circle.
"""

from __future__ import annotations

import functools
import re

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from mixkit.data import DataBundle
from mixkit.data.core import Source
from mixkit.engine import distributed as D
from mixkit.engine.arm import Arm
from mixkit.engine.loop import ArmResult
from mixkit.runio.rundir import RunDir
from mixkit.engine.runtime import Runtime
from mixkit.errors import UserError

if TYPE_CHECKING:                   # the models (timm) load when a command runs, not for --help
    from mixkit.models import ModelInfo


@dataclass
class RunContext:
    """What an arm factory may use: the config and the shared cores, built once per run."""

    cfg: Any
    data: DataBundle
    runtime: Runtime
    model_info: ModelInfo
    ssl_train: Source | None = None     # MixTraining's --ssl-data, loaded by its setup
    dist: D.Dist = D.Dist()                                  # this process's rank (torchrun)
    # the arms finished so far, by name (comparison arms are matched to the method's cost)
    done: dict[str, ArmResult] = field(default_factory=dict)
    command: "CommandSpec | None" = None        # the command being run (its method arm, ...)

    def method_result(self) -> ArmResult:
        """The command's own arm, finished earlier in this run (what comparisons match)."""
        assert self.command is not None and self.command.method_arm is not None
        return self.done[self.command.method_arm]

    def new_model(self) -> torch.nn.Module:
        """A freshly initialised model (from the global RNG: seed first)."""
        from mixkit.models import create_model

        return create_model(self.cfg.model, self.data.num_classes, self.data.img_size,
                            self.cfg.patch_size, self.data.spec.native_size)[0]

    @functools.cached_property
    def data_fingerprint(self) -> str:
        """:meth:`DataBundle.fingerprint`, once per run (checkpoints keep it)."""
        return self.data.fingerprint()

    def plan_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed)


ArmFactory = Callable[[RunContext], Arm]


# ------------------------------------------------------------------------------------------
# comparison arms: one registry, so a user's own arm is one call
# ------------------------------------------------------------------------------------------

ARM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def reserved_arm_names() -> frozenset[str]:
    """Names a comparison arm may not take: every registered command's own arms."""
    out = {"baseline"}
    for spec in COMMANDS.values():
        out |= {spec.baseline_arm, *spec.compare_arms} | ({spec.method_arm} - {None})
    return frozenset(out)


@dataclass(frozen=True)
class Comparison:
    """A ``--compare`` arm: built after the method's arm, from the same starting point, and
    matched to the method's measured cost (``ctx.method_result()`` holds its rows)."""

    name: str
    factory: ArmFactory
    help: str = ""
    colour: str | None = None       # its colour in the figures (None: one from a spare set)


COMPARISONS: dict[str, Comparison] = {}


def register_comparison(name: str, factory: ArmFactory, help: str = "", *,
                        replace: bool = False, colour: str | None = None) -> Comparison:
    """Make ``name`` a ``--compare`` arm of ``mixkit mixtrain``: ``factory(ctx)`` returns the
    :class:`~mixkit.engine.arm.Arm` to train (``ctx``: :class:`RunContext`). Its rows go to
    ``metrics.jsonl``, the table, ``summary.json`` and ``mixkit report`` like any arm's.
    A name is lower-case letters, digits and ``_`` (it names files and metrics keys)."""
    reserved = reserved_arm_names()
    if not ARM_NAME.fullmatch(name) or name in reserved:
        raise ValueError(f"comparison arm name {name!r}: a lower-case plain name, not one of "
                         f"{', '.join(sorted(reserved))}")
    if name in COMPARISONS and not replace:
        raise ValueError(f"comparison arm {name!r} is registered already (replace=True)")
    COMPARISONS[name] = Comparison(name, factory, help, colour)
    return COMPARISONS[name]


def comparison(name: str) -> Comparison:
    """The registered arm ``name``, or the one-paragraph error naming those there are."""
    if name not in COMPARISONS:
        raise UserError(f"--compare: `{name[:40]}` is not a comparison arm; registered: "
                        f"{', '.join(COMPARISONS)}.",
                        hint="E.g. --compare short,skip,infobatch,seta.")
    return COMPARISONS[name]


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
    # what "at the method's cost" compares: inputs (equal-cost steps) or train_seconds
    cost: str = "inputs"
    # the command's options (a config dataclass of mixkit.config) and its one-line help
    config_cls: type | None = None
    help: str = ""
    # the command's own figures for `mixkit report`: runs -> {file stem: matplotlib Figure}
    figures: Callable[[list[Any]], dict[str, Any]] | None = None
    # the --help panel of the command's own options
    panel: str = "Options"
    # its arms' colours in the figures (arm name -> matplotlib colour)
    colours: dict[str, str] = field(default_factory=dict)
    # metrics.jsonl keys its arms write beyond the engine's: key -> check (value -> why bad)
    row_keys: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# training commands: one registry (the command line, resume checks, config errors and the
# report find every command here; ``mixkit.commands`` registers the two)
# ------------------------------------------------------------------------------------------

COMMANDS: dict[str, CommandSpec] = {}


def register_command(spec: CommandSpec) -> CommandSpec:
    """Make ``spec`` a training command (``mixkit NAME``)."""
    if spec.name in COMMANDS and COMMANDS[spec.name] is not spec:
        raise ValueError(f"command {spec.name!r} is registered already")
    COMMANDS[spec.name] = spec
    return spec


def command_spec(name: str) -> CommandSpec:
    """The registered command ``name`` (the registry is filled by ``import mixkit.commands``,
    which the command line and the report do first)."""
    if name not in COMMANDS:
        raise UserError(f"`{str(name)[:40]}` is not a training command; registered: "
                        f"{', '.join(COMMANDS)}.")
    return COMMANDS[name]


def command_names() -> tuple[str, ...]:
    return tuple(COMMANDS)


def command_for_config(config: dict[str, Any]) -> str | None:
    """The one registered command whose options include every key of a saved ``config.yaml``
    (None when none or several do)."""
    import dataclasses

    keys = set(config)
    hits = [n for n, s in COMMANDS.items() if s.config_cls is not None and
            keys <= {f.name for f in dataclasses.fields(s.config_cls)}]
    return hits[0] if len(hits) == 1 else None
