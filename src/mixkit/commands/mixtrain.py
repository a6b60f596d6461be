"""``mixkit mixtrain``: mixTrain's command — its arms (baseline, the method, the ``--compare``
arms matched to its cost), its options (:class:`~mixkit.config.MixtrainConfig`), its figures —
registered in :data:`mixkit.command.COMMANDS`, where the command line and the report find it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from mixkit.command import (COMPARISONS, ArmFactory, CommandSpec, RunContext, comparison,
                            register_command, register_comparison)
from mixkit.config import DEFAULT_LR, TrainConfig
from mixkit.engine.optim import Recipe
from mixkit.errors import UserError
from mixkit.methods.mixtrain.settings import MixTrainSettings
from mixkit.methods.seta import SeTaSettings

if TYPE_CHECKING:       # the methods (torch models, timm) load when the command runs
    from mixkit.methods.infobatch import InfoBatchArm
    from mixkit.methods.mixtrain.method import MixTrainArm
    from mixkit.methods.seta import SeTaArm
    from mixkit.methods.supervised import SupervisedArm
from mixkit.options import option, settings_options
from mixkit.run_reader import counts, number

# ------------------------------------------------------------------------------------------
# options
# ------------------------------------------------------------------------------------------


@dataclass
@settings_options(SeTaSettings, prefix="seta_", panel="Comparison")
@settings_options(MixTrainSettings)
class MixtrainConfig(TrainConfig):
    """`mixkit mixtrain` (Krithivasan et al. 2024).

    The defaults are the setting measured best on the embedded digits (docs/benchmarks.md,
    5 seeds: MixUp 1.36x at -0.56 +- 0.94 points; CutMix at 1.41x lost 1.78 points, and
    ResNet-18 at 10 epochs was still climbing, so mixTrain's fewer steps cost it 9 points).
    """

    model: str = option("mobilenetv2_050", "timm model name (see `mixkit models`), random init.",
        panel="Model")
    batch_size: int = option(64, "Mini-batch size (inputs per step).", short="-b", min=1,
                          max=1 << 20, panel="Recipe")
    epochs: int = option(20, "Training epochs per arm.", min=1, max=100000, panel="Recipe")
    lr: Optional[float] = option(None, "Peak learning rate, not scaled by the batch size (default: "
                              "2e-3 for adamw, 0.1 for sgd).", gt=0.0, max=10.0, panel="Recipe")
    warmup_epochs: float = option(1.0, "Linear warmup length in epochs (clipped to half the run).",
                               min=0.0, max=100000, panel="Recipe")
    compare: str = option(
        "", "Comparison arms run after the mixtrain arm, each at mixtrain's measured cost "
        "(inputs): short (fewer epochs, full schedule), skip (random mini-batch skipping), "
        "infobatch (Qin et al. 2024), seta (Zhou et al. 2025). Comma-separated; empty = none.",
        panel="Comparison")
    infobatch_delta: float = option(
        0.875, "InfoBatch's annealing: prune only in the first delta of the epochs, train the "
        "rest on the full data (Qin et al.: 0.875).", gt=0.0, max=1.0, panel="Comparison")

    def recipes(self) -> list[tuple[str, str, float, str]]:
        return [(self.opt, self.sched, float(self.epochs), "--epochs")]

    def resolve(self, where: str) -> None:
        super().resolve(where)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.opt]

    def check(self, where: str) -> None:
        if self.min_lr > self.lr:
            raise UserError(f"{where}: --min-lr ({self.min_lr}) is larger than --lr ({self.lr}).")
        if round(self.seta_num_group * self.seta_window_scale) < 1:
            raise UserError(f"{where}: --seta-window-scale {self.seta_window_scale:g} with "
                            f"--seta-num-group {self.seta_num_group} keeps no cluster "
                            "(round(num_group * window_scale) is 0).",
                            hint="Raise --seta-window-scale or --seta-num-group.")
        # which names exist is the comparison registry's (mixkit.command); here the form
        if len(set(self.compare_arms)) != len(self.compare_arms):
            raise UserError(f"{where}: --compare {self.compare!r} must list distinct names "
                            f"of comparison arms ({', '.join(COMPARISONS)}, or one a "
                            "plugin registered).", hint="E.g. --compare short,skip,infobatch.")

    @property
    def compare_arms(self) -> list[str]:
        return [c.strip() for c in self.compare.split(",") if c.strip()]


# ------------------------------------------------------------------------------------------


def mixtrain_recipe(cfg: Any) -> Recipe:
    return Recipe("sl", cfg.lr, cfg.min_lr, cfg.weight_decay, cfg.warmup_epochs, cfg.epochs,
                  **cfg.recipe_options(cfg.opt, cfg.sched, cfg.epochs))


def supervised(name: str) -> ArmFactory:
    def factory(ctx: RunContext) -> SupervisedArm:
        from mixkit.methods.supervised import SupervisedArm

        return SupervisedArm(name, ctx.cfg.epochs, len(ctx.data.train),
                             mixtrain_recipe(ctx.cfg), ctx.plan_generator(),
                             smoothing=ctx.cfg.smoothing)
    return factory


def mixtrain(ctx: RunContext) -> MixTrainArm:
    from mixkit.methods.mixtrain.method import MixTrainArm

    cfg = ctx.cfg
    return MixTrainArm(MixTrainSettings.from_options(cfg), cfg.epochs, len(ctx.data.train),
                       mixtrain_recipe(cfg), ctx.model_info, ctx.data.img_size,
                       ctx.runtime.device, seed=cfg.seed, dist=ctx.dist,
                       smoothing=cfg.smoothing)


def _method_inputs(ctx: RunContext) -> list[int]:
    """The mixtrain arm's inputs per epoch, as measured in this run: what a comparison arm is
    matched to."""
    return [int(r["inputs"]) for r in ctx.method_result().rows]


def short(ctx: RunContext) -> SupervisedArm:
    """Early termination done right (§5.3): the baseline recipe over fewer epochs, its whole
    schedule (warmup, cosine to --min-lr, or the step decays at the same fractions of the run)
    compressed into them; the epoch count is mixtrain's total inputs in whole epochs, rounded to
    the nearest (at least 1)."""
    from mixkit.methods.supervised import SupervisedArm, short_epochs

    n = len(ctx.data.train)
    epochs = short_epochs(n, sum(_method_inputs(ctx)))
    recipe = mixtrain_recipe(ctx.cfg).compressed(epochs)
    return SupervisedArm("short", epochs, n, recipe, ctx.plan_generator(),
                         smoothing=ctx.cfg.smoothing)


def skip(ctx: RunContext) -> SupervisedArm:
    """Random mini-batch skipping (§5.3): every epoch of the baseline recipe, each trained on a
    random subset as large as mixtrain's inputs in that same epoch."""
    from mixkit.methods.supervised import SupervisedArm

    return SupervisedArm("skip", ctx.cfg.epochs, len(ctx.data.train), mixtrain_recipe(ctx.cfg),
                         ctx.plan_generator(), budget=_method_inputs(ctx),
                         smoothing=ctx.cfg.smoothing)


def infobatch(ctx: RunContext) -> InfoBatchArm:
    from mixkit.methods.infobatch import InfoBatchArm, prune_targets

    n, cfg = len(ctx.data.train), ctx.cfg
    targets = prune_targets(cfg.epochs, n, _method_inputs(ctx), cfg.infobatch_delta)
    return InfoBatchArm("infobatch", cfg.epochs, n, mixtrain_recipe(cfg), ctx.plan_generator(),
                        targets, ctx.runtime.device, ctx.dist, smoothing=cfg.smoothing)


def seta(ctx: RunContext) -> SeTaArm:
    from mixkit.methods.seta import SeTaArm, SeTaSettings

    cfg = ctx.cfg
    settings = SeTaSettings(**{f.name: getattr(cfg, "seta_" + f.name)
                               for f in dataclasses.fields(SeTaSettings)})
    return SeTaArm("seta", cfg.epochs, len(ctx.data.train), mixtrain_recipe(cfg),
                   ctx.plan_generator(), settings, ctx.runtime.device,
                   targets=_method_inputs(ctx), dist=ctx.dist, smoothing=cfg.smoothing)


for _name, _factory, _help, _colour in (      # colours: Okabe-Ito
        ("short", short, "the baseline recipe over fewer epochs, its whole schedule", "#E69F00"),
        ("skip", skip, "random mini-batch skipping (mixTrain §5.3)", "#009E73"),
        ("infobatch", infobatch, "InfoBatch (Qin et al., ICLR 2024)", "#D55E00"),
        ("seta", seta, "SeTa (Zhou et al., CVPR 2025)", "#CC79A7")):
    register_comparison(_name, _factory, _help, replace=True, colour=_colour)


def _mixtrain_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    """baseline, mixtrain, then the --compare arms (they are matched to mixtrain's cost)."""
    base = [("baseline", supervised("baseline"))] if cfg.baseline else []
    return base + [("mixtrain", mixtrain)] + [(c, comparison(c).factory)
                                              for c in cfg.compare_arms]


def _mixtrain_setup(ctx: RunContext) -> None:
    from mixkit.methods.mixtrain.method import check_op

    if ctx.data.multitask:
        raise UserError(f"`mixkit mixtrain` trains one task; --data {ctx.cfg.data} names "
                        f"{len(ctx.data.tasks)}.", hint="Pass one dataset to --data.")
    check_op(ctx.cfg.op, ctx.model_info, ctx.data.img_size)




def _figures(runs: list[Any]) -> dict[str, Any]:
    """mixTrain's own figures (Fig. 6-style thresholds, mixed fraction, regions), by file stem."""
    if not any(r.arm_rows("mixtrain") for r in runs):
        return {}
    from mixkit.commands import mixtrain_figures as f

    return {"mixing": f.mixing(runs), "thresholds": f.thresholds(runs),
            "regions": f.regions(runs)}


# the metrics.jsonl keys of mixTrain's arm and its comparison arms (docs/run-dir.md)
ROW_KEYS = {
    "mixed_fraction": number(0.0, 1.0),                    # mixTrain
    "region_counts": counts(), "mixed_counts": counts(),
    **{k: number(0.0, null=True) for k in ("l_corr", "l_incorr", "l_mid")},
    **{k: number(0.0, 1.0, null=True) for k in (
        "correct_below_mid", "incorrect_below_mid", "correct_below_mid_all",
        "incorrect_below_mid_all")},
    "below_mean": number(0.0, null=True), "pruned": number(0.0, null=True),   # InfoBatch
    "prune_ratio": number(0.0, 1.0, null=True),
    "seta_kept": number(0.0, 1.0, null=True),                               # SeTa
    "seta_window": number(-1, integer=True),
}

MIXTRAIN = register_command(CommandSpec(
    "mixtrain", _mixtrain_arms, method_arm="mixtrain", baseline_arm="baseline",
    setup=_mixtrain_setup, config_cls=MixtrainConfig, figures=_figures, panel="mixTrain",
    colours={"baseline": "#000000", "mixtrain": "#0072B2"},
    row_keys=ROW_KEYS,
    help="mixTrain (Krithivasan et al. 2024): train on mixed pairs of inputs, chosen per epoch "
         "by loss, for fewer batches per epoch."))
