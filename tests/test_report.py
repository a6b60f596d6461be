"""`mixkit report`: run directories with known numbers in, tables and figures out. The figures
are checked by what they plot (the data on the axes), the tables by hand-computed means."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml
from matplotlib.colors import to_rgba

from conftest import run_cli
from mixkit import plots
from mixkit.commands import mixtrain_figures, mixtraining_figures
from mixkit.run_reader import arm_table, group, load_run, time_to

N = 100        # samples in the (pretend) training set


def _rows(arm: str, accs: list[float], secs: list[float], inputs: list[int], **extra) -> list:
    return [{"arm": arm, "phase": "sl", "epoch": e, "train_loss": 1.0 / (e + 1), "val_acc": a,
             "epoch_seconds": s, "inputs": i, "samples": N, **{k: v[e] for k, v in extra.items()}}
            for e, (a, s, i) in enumerate(zip(accs, secs, inputs))]


def make_run(root: Path, name: str, seed: int, base_acc: list[float], mix_acc: list[float],
             finished: bool = True) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(
        {"data": "digits", "model": "resnet18", "epochs": 3, "op": "mixup", "seed": seed,
         "output": str(root), "experiment": name}))
    rows = _rows("baseline", base_acc, [10, 10, 10], [N, N, N]) + _rows(
        "mixtrain", mix_acc, [10, 6, 6], [N, 60, 60],
        mixed_counts=[{"r1": 0, "r3": 0}, {"r1": 70, "r3": 10}, {"r1": 60, "r3": 20}],
        region_counts=[{"r1": 20, "r2": 50, "r3": 30}] * 3,
        l_corr=[0.5, 0.4, 0.3], l_incorr=[2.0, 2.2, 2.4], l_mid=[1.25, 1.3, 1.35])
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (path / "summary.json").write_text(json.dumps(
            {"command": "mixtrain", "status": "completed", "baseline_arm": "baseline",
             "method_arm": "mixtrain"}))
    return path


@pytest.fixture
def two_seeds(tmp_path: Path) -> list[Path]:
    return [make_run(tmp_path / "runs", "s0", 0, [0.5, 0.7, 0.80], [0.5, 0.6, 0.78]),
            make_run(tmp_path / "runs", "s1", 1, [0.5, 0.7, 0.90], [0.5, 0.7, 0.84])]


def test_seeds_group_and_the_table_is_mean_sd_by_hand(two_seeds) -> None:
    runs = [load_run(p) for p in two_seeds]
    assert len(group(runs)) == 1                         # they differ only in the seed
    rows = {r["arm"]: r for r in arm_table(runs, None)}
    assert rows["baseline"]["accuracy"] == pytest.approx((0.85, statistics.stdev([0.8, 0.9])))
    assert rows["mixtrain"]["accuracy"] == pytest.approx((0.81, statistics.stdev([0.78, 0.84])))
    assert rows["mixtrain"]["speedup"] == pytest.approx((30 / 22, 0.0))
    assert rows["mixtrain"]["delta"] == pytest.approx((-0.04, statistics.stdev([-0.02, -0.06])))
    # target = baseline's mean final accuracy - 0.5 pt = 0.845: baseline seed 1 reaches it at
    # 30 s, seed 0 never; mixtrain never
    assert rows["baseline"]["target"] == pytest.approx(0.845)
    assert rows["baseline"]["time_to_target"] == [None, 30.0]
    assert rows["mixtrain"]["time_to_target"] == [None, None]


def test_time_to_accuracy_is_the_end_of_the_first_epoch_reaching_it() -> None:
    rows = _rows("a", [0.2, 0.6, 0.5], [3.0, 4.0, 5.0], [1, 1, 1])
    assert time_to(rows, 0.55) == 7.0 and time_to(rows, 0.9) is None


def test_accuracy_vs_time_plots_mean_seconds_and_accuracy_with_a_seed_band(two_seeds) -> None:
    runs = [load_run(p) for p in two_seeds]
    fig = plots.accuracy_vs_time(runs, target=0.845)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.lines}
    assert list(lines["mixtrain"].get_xdata()) == [10, 16, 22]            # cumulative seconds
    assert list(lines["mixtrain"].get_ydata()) == pytest.approx([50, 65, 81])
    assert list(lines["baseline"].get_ydata()) == pytest.approx([50, 70, 85])
    assert lines["target 84.5%"].get_ydata()[0] == pytest.approx(84.5)
    assert ax.get_xlabel() == "training time (s)" and "%" in ax.get_ylabel()
    band = ax.collections[0].get_paths()[0].vertices[:, 1]                # baseline: 80..90
    assert band.min() == pytest.approx(50) and band.max() == pytest.approx(90)
    assert lines["mixtrain"].get_color() == plots.colour("mixtrain")


def test_mixing_figure_stacks_region1_and_region3_shares(two_seeds) -> None:
    fig = mixtrain_figures.mixing([load_run(p) for p in two_seeds])
    r1, r3 = fig.axes[0].containers
    assert [b.get_height() for b in r1] == [0, 70, 60]                    # % of 100 samples
    assert [b.get_height() for b in r3] == [0, 10, 20]
    assert [b.get_y() for b in r3] == [0, 70, 60]                         # stacked on Region 1


def test_pareto_puts_each_arm_at_its_mean_seconds_and_accuracy(two_seeds) -> None:
    fig = plots.pareto([[load_run(p) for p in two_seeds]])
    points = {c.get_label(): c.lines[0].get_xydata()[0] for c in fig.axes[0].containers}
    assert list(points["baseline"]) == pytest.approx([30, 85])
    assert list(points["mixtrain"]) == pytest.approx([22, 81])


def test_report_command_writes_markdown_csv_and_figures(two_seeds, tmp_path, capsys) -> None:
    unfinished = make_run(tmp_path / "runs", "u", 2, [0.4, 0.5, 0.6], [0.4, 0.5, 0.55],
                          finished=False)
    code, out, err = run_cli(["report", str(tmp_path / "runs" / "*"), str(tmp_path / "nope"),
                              "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    assert "skipped" in out and "nope" in out and "unfinished" in out and str(unfinished) in out
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| baseline (unfinished) | 3 |" in md                 # 3 seeds, one still running
    assert "![accuracy vs time](g0-accuracy_vs_time.png)" in md
    for name in ("g0-accuracy_vs_time", "g0-mixing", "g0-thresholds", "g0-regions", "pareto"):
        assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 10_000
    table = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert [r["arm"] for r in table] == ["baseline", "mixtrain"]
    assert float(table[0]["accuracy_mean"]) == pytest.approx((0.8 + 0.9 + 0.6) / 3)


def test_report_of_nothing_usable_is_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["report", str(tmp_path / "empty")], capsys)
    assert code == 2 and "nothing to report" in err and "Traceback" not in err
    assert f"{tmp_path / 'empty'} is not a mixkit run directory" in out


def _phase_rows(arm: str, phases: list[tuple[str, float, float]]) -> list[dict]:
    """``(phase, seconds, loss)`` per epoch; mix epochs carry Eq. 3's two terms as well."""
    rows = []
    for e, (phase, secs, loss) in enumerate(phases):
        row = {"arm": arm, "phase": phase, "epoch": e + 1, "train_loss": loss,
               "epoch_seconds": secs, "inputs": N, "samples": N}
        if phase != "ssl":
            row["val_acc"] = 0.5
        if phase == "mix":
            row |= {"ssl_loss": loss / 2, "sl_loss": loss * 2}
        rows.append(row)
    return rows


def make_mixtraining_run(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(
        {"data": "digits", "model": "vit_tiny_patch16_224", "epochs_ssl": 2, "epochs_sl": 2,
         "rho": 0.5, "seed": 0, "output": str(root), "experiment": name}))
    rows = (_phase_rows("sl", [("sl", 4, 2.0), ("sl", 4, 1.0)])
            + _phase_rows("ssl+sl", [("ssl", 2, 0.9), ("ssl", 2, 0.7), ("sl", 4, 1.5),
                                     ("sl", 4, 0.8)])
            + _phase_rows("mixtraining", [("ssl", 2, 0.9), ("mix", 5, 1.2), ("sl", 4, 0.6)]))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "summary.json").write_text(json.dumps(
        {"command": "mixtraining", "status": "completed", "baseline_arm": "ssl+sl",
         "method_arm": "mixtraining"}))
    return path


def test_phase_timeline_lays_each_arms_epochs_end_to_end_coloured_by_phase(tmp_path) -> None:
    fig = mixtraining_figures.phases(load_run(make_mixtraining_run(tmp_path, "m")))
    ax = fig.axes[0]
    bars = [(round(p.get_y() + p.get_height() / 2), p.get_x(), p.get_width(),
             p.get_facecolor()) for p in ax.patches]
    colour = {k: to_rgba(v) for k, v in mixtraining_figures.PHASE_COLOURS.items()}
    mt = [(x, w, c) for y, x, w, c in bars if y == 2]                # third row: mixtraining
    assert mt == [(0, 2, colour["ssl"]), (2, 5, colour["mix"]), (7, 4, colour["sl"])]
    assert [(x, w) for y, x, w, _ in bars if y == 1] == [(0, 2), (2, 2), (4, 4), (8, 4)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sl", "ssl+sl", "mixtraining"]
    assert ax.get_xlabel() == "training time (s)"


def test_losses_figure_plots_mae_and_cross_entropy_including_the_mix_terms(tmp_path) -> None:
    fig = mixtraining_figures.losses([load_run(make_mixtraining_run(tmp_path, "m"))])
    top, bottom = fig.axes
    ssl = {ln.get_label(): list(ln.get_ydata()) for ln in top.lines}
    sl = {ln.get_label(): list(ln.get_ydata()) for ln in bottom.lines}
    nan = pytest.approx(float("nan"), nan_ok=True)
    assert ssl["mixtraining"] == [0.9, 0.6, nan]          # MAE epoch, then Eq. 3's l_ssl
    assert sl["mixtraining"] == [nan, 2.4, 0.6]           # Eq. 3's l_sl, then the SL epoch
    assert ssl["ssl+sl"][:2] == [0.9, 0.7] and sl["sl"] == [2.0, 1.0]
    assert list(top.lines[0].get_xdata()) == [1, 2]       # epochs count from 1
    assert top.get_ylabel().startswith("MAE loss") and bottom.get_ylabel().startswith("cross")
