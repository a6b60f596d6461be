"""`mixkit datasets` and `mixkit models`: what is available and where data is looked for."""

from __future__ import annotations

import re

from rich.table import Table

from mixkit.data.registry import SPECS, is_present, resolve_root
from mixkit.models import FAMILIES, supported_models


def datasets_table(data_dir: str | None) -> Table:
    root, source = resolve_root(data_dir)
    table = Table(title=f"datasets — data root {root} (from {source})")
    for col in ("name", "format / layout", "classes", "size", "where mixkit looks", "found"):
        table.add_column(col)
    for spec in SPECS.values():
        if not spec.needs_root:
            where, found = spec.layout, "yes"
        elif spec.name == "imagefolder":
            where, found = "--data-dir itself", "yes" if data_dir and is_present(spec, root) else "—"
        else:
            where = ", ".join(str(root / m) for m in spec.marker)
            found = "yes" if is_present(spec, root) else "no (--download)"
        table.add_row(spec.name, f"{spec.description}; {spec.layout}",
                      str(spec.num_classes or "from folders"), f"{spec.default_img_size}px",
                      where, found)
    return table


def models_table() -> Table:
    names = supported_models()
    table = Table(title="models — timm, random init (no downloads)")
    for col in ("family", "kind", "small-input adaptation", "timm names"):
        table.add_column(col)
    for fam in FAMILIES:
        members = [n for n in names if re.match(fam.pattern, n)]
        table.add_row(fam.name, fam.kind, fam.adaptation, ", ".join(members))
    return table
