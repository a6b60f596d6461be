"""Reports: the end-of-run speedup table (``summary.json`` data), and ``mixkit report`` over
run directories (tables with mean ± sd over seeds, ``report.md``, ``report.csv``, figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

import mixkit.commands  # noqa: F401  (registers the commands: their options and figures)
from mixkit.runio.files import atomic_write, links_in
from mixkit.summary import NOISY, input_bound_line
from mixkit.engine.timing import speedup
from mixkit.errors import UserError


def _gain(arm: dict[str, Any], ref: dict[str, Any]) -> str:
    """Accuracy gain in points, and relative to the reference (the paper's Table 1 style)."""
    pts = 100 * (arm["accuracy"] - ref["accuracy"])
    rel = 100 * (arm["accuracy"] / ref["accuracy"] - 1) if ref["accuracy"] > 0 else float("nan")
    return f"{pts:+.2f} ({rel:+.1f}%)"


def speedup_table(summary: dict[str, Any]) -> Table:
    """One row per arm: accuracy, training seconds, inputs, and ratios against the baseline(s).

    ``speedup`` is baseline seconds / arm seconds against ``summary["baseline_arm"]``; the
    accuracy gain (points, and relative) is shown against every arm in
    ``summary["compare_arms"]`` (default: the baseline arm) — for MixTraining both ``ssl+sl``
    and ``sl``, as the paper's Table 1 reads.
    """
    arms = summary["arms"]
    base_name = summary.get("baseline_arm") or ""
    base = arms.get(base_name)
    refs = [r for r in summary.get("compare_arms", [base_name]) if r in arms and len(arms) > 1]
    caption = (f"speedup = {base_name} train s / arm train s; Δ X = accuracy gain over arm X "
               "in points (relative %); best = the best epoch's accuracy (chosen on the "
               "validation set: optimistic)" if base is not None and len(arms) > 1 else
               "best = the best epoch's accuracy (chosen on the validation set: optimistic)")
    table = Table(title=Text(f"mixkit {summary['command']} — {summary.get('data')} / "
                             f"{summary.get('model')} on {summary.get('device')}"),
                  caption=caption)
    ema = any(a.get("accuracy_ema") is not None for a in arms.values())
    cols = ["arm", "accuracy", *(["EMA"] if ema else []), "best", "train s", "inputs", "epochs",
            *(["speedup"] if base is not None and len(arms) > 1 else []),
            *(f"Δ {r}" for r in refs)]
    for col in cols:
        table.add_column(col, justify="left" if col == "arm" else "right")
    for name, arm in arms.items():
        speed = []
        if base is not None and len(arms) > 1:
            ratio = speedup(base["train_seconds"], arm["train_seconds"])
            speed = ["—" if name == base_name or ratio is None else f"{ratio:.2f}x"]
        gains = ["—" if r == name else _gain(arm, arms[r]) for r in refs]
        acc = f"{100 * arm['accuracy']:.2f}%"
        if arm.get("task_accuracy"):
            acc += " (" + ", ".join(f"{t} {100 * a:.1f}" for t, a in
                                    arm["task_accuracy"].items()) + ")"
        best = arm.get("best_accuracy")
        ema_acc = [] if not ema else ["—" if arm.get("accuracy_ema") is None
                                      else f"{100 * arm['accuracy_ema']:.2f}%"]
        table.add_row(Text(name), acc, *ema_acc, "—" if best is None else f"{100 * best:.2f}%",
                      f"{arm['train_seconds']:.1f}", f"{arm['inputs']:,}", str(arm["epochs"]),
                      *speed, *gains)
    line = best_at_cost_line(summary)
    if line:
        table.caption += "\n" + line
    compiled = [a["compile_seconds"] for a in arms.values() if "compile_seconds" in a]
    if compiled:
        table.caption += (f"\ntrain s excludes torch.compile's compilation ({sum(compiled):.1f} s "
                          "in all, billed to no arm; compile_seconds in summary.json)")
    bound = input_bound_line(summary)
    if bound:
        table.caption += "\n" + bound
    noisy = [n for n, a in arms.items() if (a.get("timing_spread") or 0) > NOISY]
    if noisy:
        table.caption += (f"\nTiming noise: {', '.join(noisy)} had epochs whose per-input cost "
                          f"scattered more than {NOISY:.0%}; see speedup_median in summary.json")
    return table


# ------------------------------------------------------------------------------------------
# mixkit report RUN_DIR [RUN_DIR ...]
# ------------------------------------------------------------------------------------------


def best_at_cost_line(summary: dict[str, Any]) -> str | None:
    """The run's answer to "for this compute, what should I have run?", in words: the most
    accurate arm at or below the method's cost, and a recommendation when it is not the
    method (``summary.json``'s ``best_at_method_cost``)."""
    best, method = summary.get("best_at_method_cost"), summary.get("method_arm")
    if not best or len(summary["arms"]) < 2:
        return None
    by = best.get("by", "inputs")
    what = "inputs" if by == "inputs" else "training seconds"
    text = (f"Most accurate at or below {method}'s cost ({what}): {best['arm']} "
            f"({100 * best['accuracy']:.2f}%)")
    if best["arm"] != method and "method_accuracy" in best:
        gain = 100 * (best["accuracy"] - best["method_accuracy"])
        text += (f" — {gain:+.2f} points over {method} for no more compute: on this setting, "
                 f"run `{best['arm']}` instead (one seed; see docs/benchmarks.md for the "
                 "measured regimes).")
    return text


def _pm(ms: tuple[float, float], scale: float = 1.0, digits: int = 2) -> str:
    m, sd = ms
    if m != m:                                    # NaN: nothing to average
        return "—"
    return f"{scale * m:.{digits}f} ± {scale * sd:.{digits}f}"


def _ttt(values: list[float | None]) -> str:
    hit = [v for v in values if v is not None]
    if not hit:
        return "never"
    text = f"{sum(hit) / len(hit):.1f} s"
    return text if len(hit) == len(values) else f"{text} ({len(hit)}/{len(values)} seeds)"


COLUMNS = ("arm", "seeds", "accuracy (%)", "train s", "inputs", "speedup", "Δ accuracy (pts)",
           "time to target")


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["arm"] + ("" if r["finished"] else " (unfinished)"), str(r["seeds"]),
             _pm(r["accuracy"], 100), _pm(r["seconds"], 1, 1), _pm(r["inputs"], 1, 0),
             _pm(r["speedup"], 1, 3) + "x" if r["speedup"][0] == r["speedup"][0] else "—",
             _pm(r["delta"], 100), _ttt(r["time_to_target"])] for r in rows]


def group_title(runs: list[Any]) -> str:
    c = runs[0].config
    seeds = sorted(r.config.get("seed", 0) for r in runs)
    return (f"mixkit {runs[0].command} — {c.get('data')} / {c.get('model')}, seeds "
            f"{', '.join(map(str, seeds))}")


def rich_table(runs: list[Any], rows: list[dict[str, Any]]) -> Table:
    target = rows[0]["target"] if rows else None
    table = Table(title=Text(group_title(runs)), caption=Text(
        f"mean ± sd over seeds; speedup and Δ against {runs[0].baseline_arm}; time to target = "
        f"training seconds to first reach {100 * target:.2f}% " if target is not None else ""))
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "arm" else "right", no_wrap=True)
    for cells in table_rows(rows):                  # Text: a run's strings are never markup
        table.add_row(*(Text(c) for c in cells))
    return table


def markdown(groups: list[tuple[list[Any], list[dict[str, Any]], list[str]]],
             pareto: str | None) -> str:
    """report.md: per group, its table and its figures (relative paths); then the Pareto."""
    out = ["# mixkit report", ""]
    for runs, rows, figs in groups:
        target = rows[0]["target"] if rows else None
        out += [f"## {group_title(runs)}", "",
                f"Runs: {', '.join(f'`{r.path}`' for r in runs)}. Mean ± sd over seeds; "
                f"speedup and Δ accuracy against `{runs[0].baseline_arm}`"
                + (f"; time to target = training seconds until the validation accuracy first "
                   f"reaches {100 * target:.2f}% (the baseline's final accuracy − 0.5 pts "
                   "unless --target)." if target is not None else "."), "",
                "| " + " | ".join(COLUMNS) + " |",
                "| " + " | ".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + " |"]
        out += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
        out += [""] + [f"![{Path(f).stem.split('-', 1)[-1].replace('_', ' ')}]({f})"
                        for f in figs] + [""]
        recon = runs[0].path / "reconstruction.png"
        if recon.is_file():
            out += [f"![reconstructions]({recon.resolve()})", ""]
    if pareto:
        out += ["## Accuracy vs total training time", "", f"![pareto]({pareto})", ""]
    return "\n".join(out)


def csv_text(groups: list[tuple[list[Any], list[dict[str, Any]], list[str]]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["group", "command", "data", "model", "arm", "seeds", "accuracy_mean",
                "accuracy_sd", "train_seconds_mean", "train_seconds_sd", "inputs_mean",
                "speedup_mean", "speedup_sd", "delta_mean", "delta_sd", "time_to_target_mean",
                "target"])
    for g, (runs, rows, _) in enumerate(groups):
        for r in rows:
            hit = [t for t in r["time_to_target"] if t is not None]
            w.writerow([g, runs[0].command, runs[0].config.get("data"),
                        runs[0].config.get("model"), r["arm"], r["seeds"], *r["accuracy"],
                        *r["seconds"], r["inputs"][0], *r["speedup"], *r["delta"],
                        sum(hit) / len(hit) if len(hit) == len(r["time_to_target"]) and hit
                        else "", r["target"]])
    return buf.getvalue()


def write_report(paths: list[str], out: Path | None, target: float | None,
                 console: Any) -> Path:
    """``mixkit report``: load, group by experiment (runs differing only in --seed), print a
    table per group, write ``report.md``, ``report.csv`` and the figures into ``out``."""
    from mixkit import plots
    from mixkit.errors import UserError
    from mixkit.run_reader import arm_table, expand, group, load_run

    runs, skipped, notes = [], [], []
    for path in expand(paths):
        try:
            runs.append(load_run(path, notes))
        except UserError as err:
            skipped.append(err.paragraph)
    for why in skipped:
        console.print(f"[yellow]skipped:[/] {escape(why)}", highlight=False, soft_wrap=True)
    for why in notes:
        console.print(f"[yellow]note:[/] {escape(why)}", highlight=False, soft_wrap=True)
    if not runs:
        raise UserError("nothing to report: none of the paths is a usable mixkit run directory"
                        + (f" ({skipped[0]})" if len(skipped) == 1 else "."),
                        hint="Pass run directories, e.g. `mixkit report runs/*`.")
    out = _report_folder(out or (runs[0].path.parent / "report"))
    groups = []
    for g, members in enumerate(group(runs)):
        rows = arm_table(members, target)
        unfinished = [str(r.path) for r in members if not r.finished]
        if unfinished:
            console.print(f"[yellow]note:[/] unfinished run(s), reported as far as they got: "
                          f"{escape(', '.join(unfinished))}", highlight=False, soft_wrap=True)
        figs = plots.figures_for(members, rows[0]["target"] if rows else None,
                                 _own_figures(members[0].command))
        names = [plots.save(f, out / f"g{g}-{k}.png").name for k, f in figs.items()]
        console.print(rich_table(members, rows))
        groups.append((members, rows, names))
    commands = {r.command for r in runs}
    pareto = None
    if len(commands) == 1:
        pareto = plots.save(plots.pareto([m for m, _, _ in groups]), out / "pareto.png").name
    else:
        console.print(f"note: runs of {len(commands)} commands ({', '.join(sorted(commands))}); "
                      "no common accuracy-vs-time figure is drawn across them.")
    for name, text in (("report.md", markdown(groups, pareto)), ("report.csv", csv_text(groups))):
        atomic_write(out / name, lambda f, t=text: f.write(t.encode()))
    console.print(Text(f"report: {out / 'report.md'}, {out / 'report.csv'} and "
                       f"{sum(len(n) for _, _, n in groups) + (pareto is not None)} figures in "
                       f"{out}"))
    return out


def _report_folder(out: Path) -> Path:
    """``--out``, created if missing; refused when it is a file, cannot be made, or is or holds
    a symbolic link (mixkit writes nothing through one: a planted ``report.md`` link would
    otherwise redirect the write outside the folder)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder.",
                        hint="Pass a folder (it is created if missing).")
    links = links_in(out)
    if links:
        raise UserError(f"--out {out} is or holds a symbolic link ({links[0]}); mixkit writes "
                        "nothing through one.", hint="Remove the link, or pass another --out.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out} cannot be created: {exc.strerror or exc}.",
                        hint="Pass a folder you can write to.") from None
    return out


def write_run_plots(path: Path) -> list[Path]:
    """A finished run's own figures, into ``RUN_DIR/plots`` (``--no-plots`` skips)."""
    from mixkit import plots
    from mixkit.run_reader import arm_table, load_run

    run = load_run(path)
    rows = arm_table([run], None)
    figs = plots.figures_for([run], rows[0]["target"] if rows else None,
                             _own_figures(run.command))
    if links_in(path / "plots"):
        raise OSError(40, "RUN_DIR/plots is or holds a symbolic link; nothing is written there")
    return [plots.save(f, path / "plots" / f"{k}.png") for k, f in figs.items()]


def _own_figures(command: str):
    """The command's own figures from its registration (none for a command not registered)."""
    from mixkit.command import COMMANDS

    return COMMANDS[command].figures if command in COMMANDS else None
