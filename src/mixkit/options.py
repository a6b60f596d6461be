"""The option machinery every config class is built with: ``option()`` fields (help, range,
role), flags, coercion and validation of values from YAML or the command line, and hardened
YAML I/O. The classes themselves are elsewhere: the shared options in :mod:`mixkit.config`,
each command's own in its registration (:mod:`mixkit.commands`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import types
import typing
from dataclasses import field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from mixkit.errors import UserError

ROLES = ("experiment", "seed", "run", "name", "action")


class Options:
    """Base of every config dataclass: each subclass is known to :func:`flag_of` and
    :func:`keys_with` once defined (the one list of options, whichever command owns them)."""

    classes: list[type] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Options.classes.append(cls)

    def resolve(self, where: str) -> None:
        """Fill the defaults that depend on other options (called once values are coerced and
        range-checked); none here."""

    def check(self, where: str) -> None:
        """Checks across options, after :meth:`resolve` (``where`` names the source in the
        error); none here."""


def option(
    default: Any,
    help: str,
    *,
    short: str | None = None,
    choices: tuple[str, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    flag: str | None = None,
    role: str = "experiment",
    bench: bool | None = None,
    panel: str | None = None,
) -> Any:
    """A config field with its CLI help line, valid range and role.

    ``role`` says what the key means to a run,
    the one place the key classes are derived from (:func:`keys_with`: the keys ``--resume`` may
    change, those that do not make another experiment in ``mixkit report``, the flag-only ones,
    and the benchmarks' options):

    * ``experiment``: what is trained (data, model, recipe, method): fixed on ``--resume``;
      runs that differ in one are different experiments in ``mixkit report``;
    * ``seed``: which repetition: fixed on ``--resume``, pooled as seeds by the report;
    * ``run``: where and how it runs and what it writes (device, workers, loggers, plots):
      may change on ``--resume``, never makes another experiment;
    * ``name``: where the run directory goes (``--output``, ``--experiment``);
    * ``action``: acts on one invocation (``--overwrite``, ``--resume``): a command-line flag
      only, never read from a config file nor written to ``config.yaml`` (every other key is
      written, so ``--resume`` and ``--config`` repeat what the run wrote, not the defaults).

    ``bench``: offered by the benchmark scripts (default: not for ``name``/``action`` keys).
    ``panel``: the ``--help`` panel it is listed in (default: the shared option's group, or the
    command's own panel for a command's option).
    """
    assert role in ROLES, role
    meta = {"help": help, "short": short, "choices": choices, "min": min, "max": max,
            "gt": gt, "flag": flag, "role": role, "panel": panel,
            "bench": role not in ("name", "action") if bench is None else bench}
    return field(default=default, metadata=meta)


def settings_options(settings_cls: type, *, prefix: str = "", panel: str | None = None,
                     only: tuple[str, ...] | None = None) -> Callable[[type], type]:
    """A class decorator (under ``@dataclass``) that makes every field of a method's typed
    settings (``mixkit.methods.settings.setting``) an option of a command: same name (after
    ``prefix``), type, default, help line and range, declared once in the method's package.
    ``only``: the settings fields to expose (default: all)."""
    def add(cls: type) -> type:
        hints = typing.get_type_hints(settings_cls)
        notes = dict(cls.__dict__.get("__annotations__", {}))
        for f in fields(settings_cls):
            if only is not None and f.name not in only:
                continue
            m = f.metadata
            name = prefix + f.name
            tp, optional = _unwrap_optional(hints[f.name])
            notes[name] = Optional[tp] if optional else tp
            setattr(cls, name, option(f.default, m["help"], choices=m.get("choices"),
                                      min=m.get("min"), max=m.get("max"), gt=m.get("gt"),
                                      panel=panel))
        cls.__annotations__ = notes
        return cls
    return add


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _all_fields() -> dict[str, dataclasses.Field]:
    """Every option of every config class defined so far (the shared ones and each registered
    command's) by name: a name means the same option in every command."""
    return {f.name: f for cls in Options.classes for f in fields(cls)}


def flag_of(name: str) -> str:
    """The command-line flag of config key ``name`` (``--a-b`` for ``a_b`` unless the field
    names its own): the one derivation the CLI, the messages and the benchmarks share."""
    f = _all_fields().get(name)
    return _flag(f) if f is not None else "--" + name.replace("_", "-")


def keys_with(*roles: str) -> frozenset[str]:
    """The config keys of both commands whose ``role`` is one of ``roles``."""
    return frozenset(n for n, f in _all_fields().items() if f.metadata["role"] in roles)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def field_types(cls: type) -> dict[str, tuple[Any, bool]]:
    """``name -> (base type, optional)`` for every field of a config class."""
    hints = typing.get_type_hints(cls)
    return {f.name: _unwrap_optional(hints[f.name]) for f in fields(cls)}


def short_value(value: Any) -> str:
    """A value for a message, never longer than a line (a hostile file cannot flood stderr)."""
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 60, 60, 6, 6, 2
    return r.repr(value)


def _coerce(name: str, value: Any, tp: Any, optional: bool, where: str) -> Any:
    flag = flag_of(name)
    if value is None:
        if optional:
            return None
        raise UserError(f"{where}: `{name}` ({flag}) must be set; null is not allowed.")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if name in NUMBER_LISTS and isinstance(value, list) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return ",".join(f"{v:g}" for v in value)      # YAML [30, 60] for a list option
    hint = f"Fix the value of `{name}`."
    if tp in (int, float) and isinstance(value, str) and _is_number(value):
        hint = (f"YAML 1.1 (which PyYAML reads) takes `{value}` for a string: a float needs a "
                f"dot in its mantissa, e.g. `{name}: {_yaml_float(value)}`.")
    raise UserError(
        f"{where}: `{name}` ({flag}) must be {tp.__name__}, got {type(value).__name__} "
        f"{short_value(value)}.", hint=hint)


# options that are comma-separated numbers and may be written as a YAML list
NUMBER_LISTS = frozenset({"decay_milestones", "scale", "ratio"})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_float(text: str) -> str:
    """``1e-3`` -> ``1.0e-3``: the spelling YAML 1.1 reads as a float."""
    mantissa, _, exp = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (f"e{exp}" if exp else "")


def _check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    if value is None:
        return
    m, flag = f.metadata, _flag(f)
    if m.get("choices") and value not in m["choices"]:
        raise UserError(f"{where}: {flag} must be one of {', '.join(m['choices'])}; got "
                        f"{short_value(value)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):   # NaN fails every comparison
        raise UserError(f"{where}: {flag} is {value}, which is not a finite number.",
                        hint=f"Give {flag} a finite value.")
    lo, hi, gt = m.get("min"), m.get("max"), m.get("gt")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (
            gt is not None and value <= gt):
        low = f"> {gt}" if gt is not None else (f">= {lo}" if lo is not None else None)
        rng = " and ".join(s for s in (low, f"<= {hi}" if hi is not None else None) if s)
        raise UserError(f"{where}: {flag} is {value}, which is out of range: it must be {rng}.")


def check_experiment(name: str | None, where: str) -> None:
    """``--experiment`` is one path component under ``--output``: never ``.``, ``..``, a path
    separator, an absolute path or a control character, so a run directory can only ever be
    created, written or deleted at ``OUTPUT/NAME``."""
    if name is None:
        return
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    bad = (name in ("", ".", "..") or any(c in name for c in seps)
           or any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip()
           or len(os.fsencode(name)) > 200)
    if bad:
        raise UserError(f"{where}: --experiment {short_value(name)} is not a plain run name: "
                        "it must be a single folder name under --output (no '/', '\\', '.', '..', "
                        "control characters or surrounding spaces, at most 200 bytes).",
                        hint="Pick a name such as `fmnist-cutmix-seed0`, and choose the parent "
                        "folder with --output.")


def _command_with(key: str, cls: type) -> str | None:
    """The other training command whose config has ``key`` (a config given to the wrong
    command), or None."""
    from mixkit.command import COMMANDS, command_names

    for name in command_names():
        other = COMMANDS[name].config_cls
        if other is not None and other is not cls and key in {f.name for f in fields(other)}:
            return name
    return None


def build_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build and validate a config of type ``cls`` from a mapping; raise UserError if bad."""
    types_ = field_types(cls)
    unknown = [k for k in values if k not in types_]
    if unknown:
        key = unknown[0]
        other = _command_with(str(key), cls)
        if other:
            raise UserError(f"{where}: `{key}` is an option of `mixkit {other}`, not of this "
                            "command: this looks like a config for the other command.",
                            hint=f"Run it with `mixkit {other} -c {where}`.")
        close = difflib.get_close_matches(str(key), list(types_), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"{where}: unknown config key `{str(key)[:60]}`.{hint}",
                        hint="Run with --help to see every option; each flag --a-b is YAML "
                        "key a_b.")
    kwargs = {k: _coerce(k, v, *types_[k], where) for k, v in values.items()}
    cfg = cls(**kwargs)
    for f in fields(cls):
        _check_range(f, getattr(cfg, f.name), where)
    cfg.resolve(where)
    check_experiment(getattr(cfg, "experiment", None), where)
    cfg.check(where)
    return cfg


MAX_CONFIG_BYTES = 1 << 20      # a flat option: value file is a few kB


class _ConfigLoader(yaml.SafeLoader):
    """safe_load without aliases: a flat config never needs them, and an alias bomb (a few
    hundred bytes that expand to gigabytes) is refused before anything is expanded."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are not supported in mixkit "
                                 f"config files (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


# keys that act on this invocation only: they must be typed, never read from a file


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, oversized or bad file or a non-mapping is a UserError."""
    if path.is_dir():
        raise UserError(f"config file {path} is a folder, not a file.",
                        hint="Pass the path of a YAML file to -c/--config, e.g. "
                        "RUN_DIR/config.yaml.")
    if not path.is_file():
        raise UserError(f"config file {path} does not exist.",
                        hint="Pass the path of a YAML file to -c/--config.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is {path.stat().st_size} bytes; a mixkit config is "
                        f"a flat mapping of options and may be at most {MAX_CONFIG_BYTES} bytes.",
                        hint="Pass the right file to -c/--config.")
    try:
        data = yaml.load(path.read_text(), Loader=_ConfigLoader)  # noqa: S506 - safe loader
    except RecursionError:
        raise UserError(f"config file {path} is nested too deeply to be a mixkit config (a flat "
                        "mapping of option: value).", hint="Pass the right file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{at}: "
                        f"{getattr(exc, 'problem', exc)}.", hint="Fix the file and re-run.")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} cannot be read: {exc}.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value, "
                        f"not a {type(data).__name__}.")
    typed = [k for k in sorted(keys_with("action")) if k in data]
    if typed:
        raise UserError(f"config file {path} sets `{typed[0]}`, which acts on one invocation "
                        "and is only accepted as a command-line flag (a saved or shared config "
                        "must never delete or resume a run by itself).",
                        hint=f"Remove `{typed[0]}` from the file and pass "
                        f"{flag_of(typed[0])} on the command line.")
    return data


def load_config(cls: type, path: Path | None, overrides: dict[str, Any]) -> Any:
    """Defaults < YAML file < CLI overrides, validated once on the merged mapping."""
    values: dict[str, Any] = {}
    if path is not None:
        file_values = read_yaml(Path(path))
        build_config(cls, file_values, where=str(path))  # name the file if it alone is bad
        values.update(file_values)
    values.update(overrides)
    return build_config(cls, values, where="config")


def recipe_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as written to ``config.yaml`` (per-invocation actions left out)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.metadata["role"] != "action"}


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(recipe_dict(cfg), sort_keys=False)
