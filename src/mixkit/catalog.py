"""`mixkit datasets` and `mixkit models`: what is available and where data is looked for."""

from __future__ import annotations

import re

from rich.table import Table

from mixkit.data.registry import SPECS, locate, search_roots
from mixkit.models import FAMILIES, supported_models


def datasets_table(data_dir: str | None) -> Table:
    """Every dataset, every place mixkit looks for it (in order) and where it was found."""
    roots = search_roots(data_dir)
    order = " → ".join(f"{r} ({src})" for r, src in roots)
    table = Table(title=f"datasets — looked for in this order: {order}")
    table.add_column("name", no_wrap=True)
    table.add_column("found at", overflow="fold", ratio=1)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("format", ratio=1)
    table.add_column("where mixkit looks", overflow="fold", ratio=1)
    for spec in SPECS.values():
        if not spec.needs_root:
            where, found = "-", "embedded"
        elif spec.name == "imagefolder":
            where = "--data-dir itself"
            hit = locate(spec, roots[0][0]) if data_dir else None
            found = str(hit) if hit else "-"
        else:
            places = [p for r, _ in roots for p in spec.candidates(r)]
            where = "\n".join(str(p) for p in places)
            hit = next((h for r, _ in roots if (h := locate(spec, r)) is not None), None)
            found = str(hit) if hit else "no"
        table.add_row(spec.name, found, str(spec.num_classes or "folders"),
                      f"{spec.layout}; {spec.default_img_size}px", where)
    table.caption = ("`--download` fetches cifar10, cifar100, svhn, tinyimagenet, mnist and "
                     "fashionmnist into the first folder; `apt-get install dataset-fashion-mnist` "
                     "installs Fashion-MNIST system-wide.")
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
