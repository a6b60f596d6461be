"""Experiment loggers as callbacks (:mod:`mixkit.engine.events`): TensorBoard and Weights &
Biases, each logging every arm's per-epoch metrics and the run's final summary.

* ``--log-tensorboard``: event files under ``RUN_DIR/tb/<arm>/`` (one TensorBoard "run" per
  arm, so the arms overlay in each chart), written by ``torch.utils.tensorboard``'s
  ``SummaryWriter`` (the ``tensorboard`` package's event format); scalars per epoch (step = the
  epoch, from 1), the phase as text, the summary as scalars and a text table.
* ``--log-wandb`` (``--wandb-project``, ``--wandb-mode``): one W&B run per mixkit run, its files
  under ``RUN_DIR/wandb/``; metrics ``<arm>/<key>`` against ``<arm>/epoch``; the summary in the
  run's summary. ``--wandb-mode auto`` is offline unless ``WANDB_API_KEY`` or ``WANDB_MODE`` says
  otherwise (no network is needed; ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads later).

Both are optional dependencies (``pip install -e ".[tensorboard]"``, ``".[wandb]"``); a
missing one is an exit-2 message before anything trains (:func:`check_loggers`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixkit.engine.events import Callback, TrainState
from mixkit.errors import UserError


@dataclass(frozen=True)
class LoggerSettings:
    """Which loggers a run writes to (``--log-tensorboard``, ``--log-wandb``,
    ``--wandb-project``, ``--wandb-mode``)."""

    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "mixkit"
    wandb_mode: str = "auto"


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row, nested counts flattened (``region_counts/r1``)."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if isinstance(v, bool) or k in ("arm", "phase"):
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif isinstance(v, dict):
            out.update({f"{k}/{kk}": float(vv) for kk, vv in v.items()
                        if isinstance(vv, (int, float)) and not isinstance(vv, bool)})
    return out


# the packages each logger uses, imported up front (a broken install fails before training,
# not after epoch 1): module, the object it must provide, the extra that installs it
LOGGER_IMPORTS = {"tensorboard": ("torch.utils.tensorboard", "SummaryWriter", "tensorboard"),
                  "wandb": ("wandb", "init", "wandb")}
# W&B's own rules for a project name (wandb.sdk.wandb_settings.Settings.validate_project)
WANDB_PROJECT_MAX = 128
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"


def check_loggers(loggers: LoggerSettings) -> None:
    """Everything the chosen loggers need, before the run dir exists: their packages import
    (the objects mixkit will use, not just the top module), the W&B project name follows
    W&B's rules, and an online W&B run has credentials."""
    for on, name in ((loggers.tensorboard, "tensorboard"), (loggers.wandb, "wandb")):
        if on:
            _check_import(name)
    if loggers.wandb:
        check_wandb_project(loggers.wandb_project)
        if wandb_mode(loggers.wandb_mode) == "online" and not _wandb_credentials():
            raise UserError("--wandb-mode online needs W&B credentials, and none were found "
                            "(no WANDB_API_KEY, no netrc entry for "
                            f"{_wandb_host()}).", hint="Run `wandb login` or set "
                            "WANDB_API_KEY, or log offline with --wandb-mode offline (then "
                            "`wandb sync RUN_DIR/wandb/offline-run-*`).")


def _check_import(name: str) -> None:
    module, attr, extra = LOGGER_IMPORTS[name]
    try:
        __import__(name)                                  # the package itself, then
        getattr(__import__(module, fromlist=[attr]), attr)    # what mixkit will call
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise UserError(f"--log-{extra} needs the `{name}` package, which is not installed or "
                        f"does not import (`{missing}`: {str(exc)[:160]}).",
                        hint=f'Install it with `pip install -e ".[{extra}]"` (or `pip install '
                        f"{name}`), or drop --log-{extra}.") from None
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything at import
        raise UserError(f"--log-{extra}: the `{name}` package is installed but broken: "
                        f"importing {module}.{attr} fails ({type(exc).__name__}: "
                        f"{str(exc)[:160]}).", hint=f"Reinstall it (`pip install "
                        f"--force-reinstall {name}`), or drop --log-{extra}.") from None


def check_wandb_project(project: str) -> None:
    bad = sorted({c for c in project if c in WANDB_PROJECT_FORBIDDEN})
    if not project or len(project) > WANDB_PROJECT_MAX or bad or \
            any(ord(c) < 32 or ord(c) == 127 for c in project):
        shown = project[:60].encode("unicode_escape").decode() + ("..." if len(project) > 60
                                                                   else "")
        why = (f"contains {' '.join(bad)}" if bad else f"is {len(project)} characters"
               if project else "is empty")
        raise UserError(f"--wandb-project `{shown}` is not a W&B project name: it {why}. W&B "
                        f"allows at most {WANDB_PROJECT_MAX} characters and none of "
                        f"{' '.join(WANDB_PROJECT_FORBIDDEN)} or control characters.",
                        hint="Pick a plain name such as `mixkit-fmnist`.")


def wandb_mode(mode: str) -> str:
    """``auto``: offline unless ``WANDB_MODE`` or ``WANDB_API_KEY`` says otherwise."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY")
                                            else "offline")


def _wandb_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or ""


def _wandb_credentials() -> bool:
    """An API key in the environment or a netrc entry for the W&B host (where `wandb login`
    writes it)."""
    import netrc

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(_wandb_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class TensorBoardLogger(Callback):
    def __init__(self, run_dir: Path) -> None:
        self.root = run_dir / "tb"
        self.writers: dict[str, Any] = {}
        self._phase: dict[str, str] = {}

    def _writer(self, arm: str):
        if arm not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            folder = self.root / arm
            for p in (self.root, folder):       # written only into real folders of the run
                if p.is_symlink() or (p.exists() and not p.is_dir()):
                    raise UserError(f"{p} is not a folder mixkit made (a file or a symbolic "
                                    "link); the TensorBoard logger writes nothing through "
                                    "one.", hint="Remove it, then resume the run.")
            self.writers[arm] = SummaryWriter(str(folder))
        return self.writers[arm]

    def eval_end(self, state: TrainState) -> None:
        row = state.row or {}
        w, step = self._writer(state.arm), int(row.get("epoch", state.epoch + 1))
        for k, v in scalars(row).items():
            if k != "epoch":
                w.add_scalar(k, v, step)
        if row.get("phase") and self._phase.get(state.arm) != row["phase"]:
            self._phase[state.arm] = row["phase"]
            w.add_text("phase", f"{row['phase']} from epoch {step}", step)
        w.flush()

    def run_end(self, summary: dict[str, Any]) -> None:
        lines = ["| arm | accuracy | train s | speedup |", "| --- | --- | --- | --- |"]
        for arm, a in summary.get("arms", {}).items():
            w = self._writer(arm)
            for k in ("accuracy", "accuracy_ema", "train_seconds", "speedup", "accuracy_delta"):
                if isinstance(a.get(k), (int, float)):
                    w.add_scalar(f"summary/{k}", float(a[k]), 0)
            speed = a.get("speedup")
            lines.append(f"| {arm} | {100 * a['accuracy']:.2f}% | {a['train_seconds']:.1f} | "
                         + (f"{speed:.2f}x" if isinstance(speed, (int, float)) else "—") + " |")
            w.add_text("summary", "\n".join(lines), 0)
            w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()


class WandbLogger(Callback):
    def __init__(self, run_dir: Path, project: str, mode: str,
                 run_config: dict[str, Any]) -> None:
        import wandb

        self.run = None
        folder = run_dir / "wandb"
        folder.mkdir(exist_ok=True)
        # W&B's service writes its debug logs under WANDB_CACHE_DIR (default ~/.cache/wandb)
        # and links them into the run: both stay in the run dir unless the user chose a place
        # (set for the W&B run's life, restored when it finishes)
        self._env = _EnvDefault("WANDB_CACHE_DIR", str(folder / "cache"))
        try:
            self.run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir),
                                  mode=wandb_mode(mode), config=run_config,
                                  reinit="finish_previous")
        except Exception as exc:  # noqa: BLE001 - W&B raises its own and pydantic's types
            self._env.restore()
            raise UserError(f"W&B could not start a run ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:300]}).",
                            hint="Check the WANDB_* environment variables and "
                            "--wandb-project/--wandb-mode, or drop --log-wandb.") from None
        self._defined: set[str] = set()

    def eval_end(self, state: TrainState) -> None:
        row = state.row or {}
        if state.arm not in self._defined:
            self.run.define_metric(f"{state.arm}/epoch")
            self.run.define_metric(f"{state.arm}/*", step_metric=f"{state.arm}/epoch")
            self._defined.add(state.arm)
        values = {f"{state.arm}/{k}": v for k, v in scalars(row).items()}
        if row.get("phase"):
            values[f"{state.arm}/phase"] = row["phase"]
        self.run.log(values)

    def run_end(self, summary: dict[str, Any]) -> None:
        for arm, a in summary.get("arms", {}).items():
            for k in ("accuracy", "accuracy_ema", "train_seconds", "speedup", "accuracy_delta",
                      "inputs"):
                if isinstance(a.get(k), (int, float)):
                    self.run.summary[f"{arm}/{k}"] = a[k]
        for k in ("speedup", "accuracy_delta", "speedup_median"):
            if isinstance(summary.get(k), (int, float)):
                self.run.summary[k] = summary[k]

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
            self._env.restore()


class _EnvDefault:
    """``var=value`` until :meth:`restore`, unless the user set ``var`` (then nothing)."""

    def __init__(self, var: str, value: str) -> None:
        self.var = var
        self.ours = not os.environ.get(var)
        if self.ours:
            os.environ[var] = value

    def restore(self) -> None:
        if self.ours:
            os.environ.pop(self.var, None)
            self.ours = False


def build_loggers(loggers: LoggerSettings, run_dir: Path | None,
                  run_config: dict[str, Any]) -> list[Callback]:
    """The loggers ``loggers`` asks for (rank 0 only: ``run_dir`` is None elsewhere);
    ``run_config``: the run's options, as ``config.yaml`` holds them (W&B's run config)."""
    if run_dir is None:
        return []
    out: list[Callback] = []
    if loggers.tensorboard:
        out.append(TensorBoardLogger(run_dir))
    if loggers.wandb:
        out.append(WandbLogger(run_dir, loggers.wandb_project, loggers.wandb_mode, run_config))
    return out
