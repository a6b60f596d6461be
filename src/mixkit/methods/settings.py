"""Typed method settings, declared once: each field carries its help line and its valid range,
so the method validates itself where it is defined and the command line builds its flags from
the same declaration (``mixkit.options.settings_options``), never a second copy.

This module knows no command line: a field is a plain ``dataclasses.field`` with metadata.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
            min: float | None = None, max: float | None = None,
            gt: float | None = None) -> Any:
    """A settings field: its default, a one-line help (what the paper does, what the
    alternative is), and its range (``choices``; ``min`` <= v <= ``max``; v > ``gt``)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "min": min, "max": max, "gt": gt})


def check_settings(settings: Any) -> None:
    """``ValueError`` naming the first field of ``settings`` outside its declared range."""
    for f in dataclasses.fields(settings):
        v, m = getattr(settings, f.name), f.metadata
        if v is None or not m:
            continue
        if m.get("choices") and v not in m["choices"]:
            raise ValueError(f"{f.name} {v!r} must be one of {', '.join(m['choices'])}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if m.get("gt") is not None and not v > m["gt"]:
            raise ValueError(f"{f.name} {v} must be greater than {m['gt']}")
        if m.get("min") is not None and v < m["min"]:
            raise ValueError(f"{f.name} {v} must be at least {m['min']}")
        if m.get("max") is not None and v > m["max"]:
            raise ValueError(f"{f.name} {v} must be at most {m['max']}")


def settings_from(cls: type[T], options: Mapping[str, Any] | Any) -> T:
    """``cls``'s settings as named in ``options`` (a mapping, or any object with those
    attributes, such as the command line's resolved config); the rest keep their defaults."""
    get = options.get if isinstance(options, Mapping) else (
        lambda k, d: getattr(options, k, d))
    return cls(**{f.name: get(f.name, f.default) for f in dataclasses.fields(cls)})
