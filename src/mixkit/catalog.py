"""`mixkit datasets` and `mixkit models`: what is available and where data is looked for."""

from __future__ import annotations

import re
from pathlib import Path

from rich.table import Table

from mixkit.data.registry import SPECS, locate, search_roots
from mixkit.models import FAMILIES, supported_models


def _under(path: Path, roots: list[tuple[Path, str]]) -> str:
    """``path`` as ``[k]/rest`` when it lies under search root k (the title numbers them)."""
    for k, (root, _) in enumerate(roots, start=1):
        try:
            rest = path.relative_to(root)
        except ValueError:
            continue
        return f"[{k}]/{rest}" if str(rest) != "." else f"[{k}]"
    return str(path)


def datasets_table(data_dir: str | None, verbose: bool = False) -> Table:
    """Every dataset, where mixkit looks for it and where it was found, readable at 80 columns:
    the search roots are numbered once in the title and paths are shown under them
    (``[2]/fashion-mnist``); ``verbose`` lists every full path looked at instead."""
    roots = search_roots(data_dir)
    order = "; ".join(f"[{k}] {r} ({src})" for k, (r, src) in enumerate(roots, start=1))
    table = Table(title=f"datasets — looked for under {order}", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("px", justify="right", no_wrap=True)
    table.add_column("found at", overflow="fold", ratio=1)
    table.add_column("where mixkit looks" + ("" if verbose else " (under each root)"),
                     overflow="fold", ratio=2 if not verbose else 3)
    for spec in SPECS.values():
        if not spec.needs_root:
            where, found = "-", "embedded"
        elif spec.at_data_dir:
            where = "--data-dir itself"
            hit = locate(spec, roots[0][0]) if data_dir else None
            found = _under(hit, roots) if hit else "-"
        else:
            places = [p for r, _ in roots for p in spec.candidates(r)]
            where = ("\n".join(str(p) for p in places) if verbose else
                     ", ".join(dict.fromkeys(str(p.relative_to(roots[0][0]))
                                             for p in spec.candidates(roots[0][0]))))
            hit = next((h for r, _ in roots if (h := locate(spec, r)) is not None), None)
            if hit is not None and spec.marker and any(hit == r for r, _ in roots):
                hit = hit / spec.marker[0]          # the root that holds it: name what
            found = _under(hit, roots) if hit else "no"
        table.add_row(spec.name, str(spec.num_classes or "folders"), str(spec.default_img_size),
                      found, where)
    table.caption = ("`--download` fetches cifar10, cifar100, svhn, tinyimagenet, mnist and "
                     "fashionmnist into [1]; `apt-get install dataset-fashion-mnist` installs "
                     "Fashion-MNIST system-wide. `docs/data.md` has each format; --verbose "
                     "lists every full path.")
    return table


def models_table() -> Table:
    """One block per family, readable at 80 columns: its name and kind, then the adaptation
    and the timm names as lines of their own (the ViT family alone has 16 names)."""
    names = supported_models()
    table = Table(title="models — timm, random init (no downloads)", show_header=False,
                  show_lines=True)
    table.add_column("family", no_wrap=True)
    table.add_column("", ratio=1)
    for fam in FAMILIES:
        members = [n for n in names if re.match(fam.pattern, n)]
        table.add_row(f"{fam.name}\n({fam.kind})", f"{fam.adaptation}\n"
                      + ", ".join(_compact(members)))
    return table


def _compact(names: list[str]) -> list[str]:
    """``resnet18, resnet26, resnet34`` -> ``resnet18/26/34``: timm names that differ only in a
    trailing number, folded (the full names are what ``--model`` takes)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        m = re.fullmatch(r"(.*?)(\d+)", n)
        stem, num = (m.group(1), m.group(2)) if m else (n, "")
        groups.setdefault(stem, []).append(num)
    return [stem + "/".join(sorted(nums, key=int)) if nums != [""] else stem
            for stem, nums in groups.items()]
