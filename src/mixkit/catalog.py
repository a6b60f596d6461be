"""`mixkit datasets` and `mixkit models`: what is available and where data is looked for."""

from __future__ import annotations

import re

from rich.table import Table

from mixkit.data.registry import SPECS, is_present, resolve_root
from mixkit.models import FAMILIES, supported_models


def datasets_table(data_dir: str | None) -> Table:
    root, source = resolve_root(data_dir)
    table = Table(title=f"datasets — data root {root} (from {source})")
    table.add_column("name", no_wrap=True)
    table.add_column("found", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("format", ratio=1)
    table.add_column("where mixkit looks", overflow="fold", ratio=1)
    for spec in SPECS.values():
        if not spec.needs_root:
            where, found = "-", "yes"
        elif spec.name == "imagefolder":
            where = "--data-dir itself"
            found = "yes" if data_dir and is_present(spec, root) else "-"
        else:
            where = ", ".join(str(root / m) for m in spec.marker)
            found = "yes" if is_present(spec, root) else "no"
        table.add_row(spec.name, found, str(spec.num_classes or "folders"),
                      f"{spec.layout}; {spec.default_img_size}px", where)
    table.caption = ("`--download` fetches cifar10, cifar100, svhn and tinyimagenet into the "
                     "data root.")
    return table


def models_table() -> Table:
    names = supported_models()
    table = Table(title="models — timm, random init (no downloads)")
    table.add_column("family", no_wrap=True)
    for col in ("kind", "small-input adaptation", "timm names"):
        table.add_column(col)
    for fam in FAMILIES:
        members = [n for n in names if re.match(fam.pattern, n)]
        table.add_row(fam.name, fam.kind, fam.adaptation, ", ".join(members))
    return table
