"""The ``mixkit`` command line: parse -> config -> run, nothing else.

Training options are generated from the config dataclasses (:mod:`mixkit.config`), so every
flag has a YAML key, a help line and a validated range by construction. A flag left out is
``None`` here and does not override the config file.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer
from rich.console import Console

from mixkit.options import field_types, flag_of, load_config
import mixkit.commands  # noqa: F401  (registers the training commands)
from mixkit.command import COMMANDS, CommandSpec
from mixkit.errors import EXIT_USER_ERROR, UserError, print_user_error, printable

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Cheaper image-classifier training: MixTraining and mixTrain, with "
                  "speedup reports measured against baselines run side by side.")


def _version(value: bool) -> None:
    if value:
        import timm
        import torch

        import mixkit

        print(f"mixkit {mixkit.__version__} (torch {torch.__version__}, timm {timm.__version__})")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print mixkit's, torch's and timm's versions.")
          ) -> None:
    """Cheaper image-classifier training: MixTraining and mixTrain, with speedup reports
    measured against baselines run side by side."""


# --help groups the options into panels (Typer's rich_help_panel), in this order after the
# command's own; each option names its panel where it is declared (``option(panel=...)``), and an
# option that names none is the command's own (``CommandSpec.panel``)
PANELS = ("Data", "Model", "Recipe", "Logging", "Devices")


def panel_of(name: str, spec: CommandSpec) -> str:
    """The --help panel of option ``name`` of command ``spec``: the one its declaration names
    (``option(panel=...)``), else the command's own panel (``-c/--config``: Run & output)."""
    import dataclasses

    if name == "config":
        return "Run & output"
    declared = {f.name: f.metadata.get("panel") for f in dataclasses.fields(spec.config_cls)}
    return declared.get(name) or spec.panel


def _option(name: str, tp: Any, meta: dict, panel: str | None = None) -> inspect.Parameter:
    flag = flag_of(name)
    decls = [f"{flag}/--no-{flag[2:]}"] if tp is bool else [flag]
    if meta.get("short"):
        decls.append(meta["short"])
    # "(one of: a, b)", not "[a|b]": square brackets are Rich markup and would vanish from --help
    help_ = meta["help"] + (f" (one of: {', '.join(meta['choices'])})" if meta.get("choices")
                            else "")
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[tp],
                             default=typer.Option(None, *decls, help=help_,
                                                  show_default=False, rich_help_panel=panel))


def training_command(spec: CommandSpec,
                     run: Callable[[type, Optional[Path], dict[str, Any]], None]) -> Callable:
    """A Typer command whose options are the fields of the command's config class plus
    ``-c/--config``, grouped into --help panels."""
    import dataclasses

    config_cls = spec.config_cls
    defaults = {f.name: f for f in dataclasses.fields(config_cls)}
    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY,
                                annotation=typer.Context),
              inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
        default=typer.Option(None, "--config", "-c", help="YAML config file; flags override it.",
                             rich_help_panel=panel_of("config", spec)))]
    for name, (tp, _) in field_types(config_cls).items():
        meta = dict(defaults[name].metadata)
        default = defaults[name].default
        if default is not None:
            meta["help"] = f"{meta['help']} (default: {default})"
        params.append(_option(name, tp, meta, panel_of(name, spec)))

    def command(**kwargs: Any) -> None:
        obj = kwargs.pop("ctx").obj or {}
        path = kwargs.pop("config")
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        run(config_cls, path, overrides, obj.get("callbacks", ()))

    order = ["Run & output", spec.panel, "Comparison", *PANELS]
    params[1:] = sorted(params[1:], key=lambda p: order.index(panel_of(p.name, spec)))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = config_cls.__doc__
    return command


def _run(command_name: str) -> Callable[..., None]:
    def run(config_cls: type, path: Optional[Path], overrides: dict[str, Any],
            callbacks: Sequence[Callable[[], Any]] = ()) -> None:
        from mixkit import orchestrate, resume_checks
        from mixkit.command import command_spec

        spec = command_spec(command_name)
        if "resume" in overrides:
            if path is not None:
                raise UserError("--resume uses the run's own config.yaml; drop -c/--config.")
            cfg, checkpoint = resume_checks.resume_config(config_cls, spec, overrides)
            orchestrate.run(cfg, spec, strict_experiment=True, checkpoint=checkpoint,
                            callbacks=callbacks)
            return
        cfg = load_config(config_cls, path, overrides)
        orchestrate.run(cfg, spec, strict_experiment="experiment" in overrides,
                        callbacks=callbacks)
    return run


for _spec in COMMANDS.values():        # every registered training command (mixkit.commands)
    app.command(_spec.name, help=_spec.help)(training_command(_spec,
                                                              _run(_spec.name)))


@app.command("datasets")
def datasets_cmd(data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="Data root to look in (default: $MIXKIT_DATA_DIR, else the "
        "user cache dir)."),
        verbose: bool = typer.Option(False, "--verbose", "-v",
                                     help="List every full path looked at.")) -> None:
    """List the datasets, where mixkit looks and whether it found them."""
    from mixkit.catalog import datasets_table

    Console().print(datasets_table(str(data_dir) if data_dir else None, verbose))


@app.command("report")
def report_cmd(
        run_dirs: list[str] = typer.Argument(..., help="Run directories (or a quoted glob)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Where report.md, report.csv "
                                           "and the figures go (default: <first run's "
                                           "parent>/report)."),
        target: Optional[float] = typer.Option(None, "--target", help="Target accuracy "
                                               "(0-1) for time-to-target (default: the "
                                               "baseline's final accuracy - 0.005).")) -> None:
    """Tables (mean ± sd over seeds) and figures from finished or unfinished run directories."""
    from mixkit.report import write_report

    if target is not None and not 0.0 < target <= 1.0:
        raise UserError(f"--target {target} must be an accuracy in (0, 1].", hint="E.g. 0.85.")
    console = Console()
    write_report(run_dirs, out, target, console if console.is_terminal else Console(width=130))


@app.command("models")
def models_cmd() -> None:
    """List the supported model families, how each is adapted, and the timm names."""
    from mixkit.catalog import models_table

    Console().print(models_table())


def _wide_help_off_a_terminal() -> None:
    """``--help`` piped to a file or a pager: Rich would assume 80 columns and squeeze each
    option's help into ~20 characters; use 120 (``$TERMINAL_WIDTH`` or ``$COLUMNS`` win)."""
    import typer.rich_utils as rich_utils

    if rich_utils.MAX_WIDTH is None and not os.environ.get("COLUMNS") and not sys.stdout.isatty():
        rich_utils.MAX_WIDTH = 120


def main(argv: list[str] | None = None, *,
         callbacks: Sequence[Callable[[], Any]] = ()) -> None:
    """Console-script entry point: UserError -> one paragraph on stderr and exit code 2.

    ``callbacks``: factories of engine callbacks attached to every arm of a training command
    (:func:`mixkit.orchestrate.run`): how a plugin, a notebook or a test drives the real command
    line and observes it, without patching anything."""
    from mixkit.engine.signals import Interrupted
    from mixkit.errors import EXIT_RUN_FAILED, RunFailed

    _wide_help_off_a_terminal()
    try:
        app(args=argv, standalone_mode=True, obj={"callbacks": tuple(callbacks)})
    except UserError as err:
        if int(os.environ.get("RANK", "0")) == 0:     # under torchrun, rank 0 speaks for all
            print_user_error(err)
        sys.exit(EXIT_USER_ERROR)
    except Interrupted as stop:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"mixkit: {printable(str(stop))}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except RunFailed as err:            # a NaN loss, a full disk: summary.json says "failed"
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {printable(str(err))}", file=sys.stderr)
        sys.exit(EXIT_RUN_FAILED)
