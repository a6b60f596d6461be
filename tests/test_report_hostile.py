"""`mixkit report` and `--resume` on malformed or hostile run directories (#27): every case is
a one-line note naming the file (and line) and that run left out, exit 2 only when nothing is
left, never a traceback; nothing is written through a symbolic link; reads are bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import run_cli
from test_report import make_run


def _rows_file(run: Path) -> Path:
    return run / "metrics.jsonl"


def _edit_row(k: int, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Replace row ``k`` of metrics.jsonl by ``edit(row)`` (a value to dump, or raw text)."""
    def damage(run: Path) -> None:
        lines = _rows_file(run).read_text().splitlines()
        new = edit(json.loads(lines[k]))
        lines[k] = new if isinstance(new, str) else json.dumps(new)
        _rows_file(run).write_text("\n".join(lines) + "\n")
    return damage


def _without(key: str) -> Callable[[dict], dict]:
    return lambda r: {k: v for k, v in r.items() if k != key}


def _every_row(edit: Callable[[dict], dict]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        rows = [edit(json.loads(x)) for x in _rows_file(run).read_text().splitlines()]
        _rows_file(run).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return damage


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_text(text)


def _huge_rows(run: Path) -> None:
    row = '{"arm": "baseline", "phase": "sl", "epoch": 1, "train_loss": 1.0, ' \
          '"epoch_seconds": 1.0, "inputs": 100, "samples": 100}\n'
    with open(_rows_file(run), "a") as f:          # more rows than any run writes
        f.write(row * 100_001)


# (id, damage, what the note must name)
SKIPPED = [
    ("row-is-a-list", _edit_row(1, lambda r: [1, 2]), "line 2"),
    ("row-without-arm", _edit_row(2, _without("arm")), "no `arm`"),
    ("row-without-epoch-seconds", _edit_row(0, _without("epoch_seconds")), "`epoch_seconds`"),
    ("val-acc-a-string", _edit_row(1, lambda r: {**r, "val_acc": "0.9"}), "`val_acc`"),
    ("val-acc-infinity", _edit_row(1, lambda r: json.dumps(r).replace(
        '"val_acc": 0.7', '"val_acc": Infinity')), "`val_acc`"),
    ("epoch-seconds-negative", _edit_row(1, lambda r: {**r, "epoch_seconds": -5.0}),
     "`epoch_seconds`"),
    ("samples-0", _edit_row(4, lambda r: {**r, "samples": 0}), "`samples`"),
    ("mixed-counts-a-string", _edit_row(4, lambda r: {**r, "mixed_counts": "lots"}),
     "`mixed_counts`"),
    ("inputs-10-to-the-400", _edit_row(1, lambda r: json.dumps(r).replace(
        '"inputs": 100', '"inputs": 1' + "0" * 400)), "`inputs`"),
    ("row-nested-200k-deep", _edit_row(1, lambda r: "[" * 200_000 + "]" * 200_000), "line 2"),
    ("arm-name-with-markup", _edit_row(1, lambda r: {**r, "arm": "[/]"}), "`arm`"),
    ("too-many-rows", _huge_rows, "100,000 rows"),
    ("config-nested-50k-deep", _write("config.yaml", "a: " + "[" * 50_000 + "]" * 50_000),
     "config.yaml"),
    ("config-alias-bomb", _write("config.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))), "aliases"),
    ("config-not-flat", _write("config.yaml", "data: {nested: 1}\n"), "config.yaml"),
    ("summary-command-a-list", _write("summary.json", '{"command": ["mixtrain"]}'),
     "`command`"),
    ("summary-nested-deep", _write("summary.json", "[" * 100_000 + "]" * 100_000),
     "summary.json"),
    ("config-is-a-link-out", lambda run: ((run / "config.yaml").unlink(),
                                          (run / "config.yaml").symlink_to("/etc/hostname")),
     "symbolic link"),
]


@pytest.mark.parametrize("case", SKIPPED, ids=[c[0] for c in SKIPPED])
def test_a_bad_run_dir_is_left_out_with_a_note(case, tmp_path: Path, capsys) -> None:
    _, damage, named = case
    root = tmp_path / "runs"
    make_run(root, "good", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78])
    bad = make_run(root, "bad", 1, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78])
    damage(bad)
    t = time.perf_counter()
    code, out, err = run_cli(["report", str(root / "good"), str(bad), "--out",
                              str(tmp_path / "rep")], capsys)
    assert time.perf_counter() - t < 30                          # bounded: no 159 s read
    assert code == 0, err
    assert "Traceback" not in out + err
    note = next(line for line in out.splitlines() if line.startswith("skipped:"))
    assert str(bad) in " ".join(out.split()) and named in " ".join(out.split()), out
    assert len(note) < 600
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "`" + str(root / "good") + "`" in report and str(bad) not in report


@pytest.mark.parametrize("case", [c for c in SKIPPED if c[0] in (
    "row-is-a-list", "config-alias-bomb", "config-is-a-link-out")], ids=lambda c: c[0])
def test_a_bad_run_dir_alone_is_exit_2_naming_it(case, tmp_path: Path, capsys) -> None:
    _, damage, named = case
    bad = make_run(tmp_path / "runs", "bad", 1, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78])
    damage(bad)
    code, _, err = run_cli(["report", str(bad), "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and "Traceback" not in err and "nothing to report" in err
    assert named in " ".join(err.split()) and not (tmp_path / "rep").exists()


def test_a_torn_last_line_is_left_out_and_the_good_rows_reported(tmp_path: Path,
                                                                 capsys) -> None:
    run = make_run(tmp_path / "runs", "r", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78], finished=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"arm": "mixtrain", "phase": "sl", "epo')          # a crash mid-append
    code, out, err = run_cli(["report", str(run), "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    assert "torn last line" in out and "line 7" in out
    csv_text = (tmp_path / "rep" / "report.csv").read_text()
    assert "baseline" in csv_text and "mixtrain" in csv_text


@pytest.mark.parametrize("edit,shown", [
    (_every_row(lambda r: {**r, "val_acc": None}), "—"),            # never evaluated
    (_every_row(lambda r: {**r, "epoch_seconds": 0.0}), "—"),       # no speed to report
])
def test_degenerate_but_valid_rows_report_without_figures_they_cannot_have(
        edit, shown, tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "runs", "r", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78])
    edit(run)
    code, out, err = run_cli(["report", str(run), "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    assert shown in out and "Traceback" not in out + err


def test_user_strings_are_never_rich_markup(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    run = make_run(root, "[bold]x[/]", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78], finished=False)
    cfg = (run / "config.yaml").read_text().replace("data: digits", "data: '[red]d[/red]'")
    (run / "config.yaml").write_text(cfg)
    code, out, err = run_cli(["report", str(run), "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    assert "[red]d[/red]" in out and "[bold]x[/]" in " ".join(out.split())


@pytest.mark.parametrize("kind", ["file", "uncreatable", "report-link", "folder-link"])
def test_out_that_is_a_file_uncreatable_or_a_link_is_refused(kind: str, tmp_path: Path,
                                                             capsys) -> None:
    run = make_run(tmp_path / "runs", "r", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78])
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "rep"
    if kind == "file":
        out.write_text("x")
    elif kind == "uncreatable":
        out = outside / "sub"
    elif kind == "report-link":
        out.mkdir()
        (out / "report.md").symlink_to(outside)
    else:
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    code, _, err = run_cli(["report", str(run), "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err and "--out" in err, err
    assert outside.read_text() == "keep me"
    assert not list((tmp_path / "elsewhere").iterdir()) if kind == "folder-link" else True


def test_resume_refuses_a_run_dir_holding_a_link_or_a_deep_config(tmp_path: Path,
                                                                  capsys) -> None:
    run = make_run(tmp_path / "runs", "r", 0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.78],
                   finished=False)
    (run / "last.pt").symlink_to(tmp_path / "nowhere.pt")
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 2 and "symbolic link" in err and "Traceback" not in err
    (run / "last.pt").unlink()
    (run / "summary.json").write_text("[" * 100_000 + "]" * 100_000)   # read for its status
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 2 and "no checkpoint" in err and "Traceback" not in err
    deep = tmp_path / "deep.yaml"                       # the same reader as config.yaml's
    deep.write_text("a: " + "[" * 50_000 + "]" * 50_000)
    code, _, err = run_cli(["mixtrain", "-c", str(deep)], capsys)
    assert code == 2 and "nested too deeply" in err and "Traceback" not in err
