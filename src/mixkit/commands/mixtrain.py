"""``mixkit mixtrain``: mixTrain's command — its arms (baseline, the method, the ``--compare``
arms matched to its cost), its options (:class:`~mixkit.config.MixtrainConfig`), its figures —
registered in :data:`mixkit.command.COMMANDS`, where the command line and the report find it.
"""

from __future__ import annotations

from typing import Any

from mixkit.command import (ArmFactory, CommandSpec, RunContext, comparison, register_command,
                            register_comparison)
from mixkit.config import MixtrainConfig
from mixkit.engine.optim import Recipe
from mixkit.errors import UserError
from mixkit.methods.infobatch import InfoBatchArm, prune_targets
from mixkit.methods.mixtrain.method import MixTrainArm, check_op
from mixkit.methods.mixtrain.settings import MixTrainSettings
from mixkit.methods.seta import SeTaArm, SeTaSettings
from mixkit.methods.supervised import SupervisedArm, short_epochs

# ------------------------------------------------------------------------------------------


def mixtrain_recipe(cfg: Any) -> Recipe:
    return Recipe("sl", cfg.lr, cfg.min_lr, cfg.weight_decay, cfg.warmup_epochs, cfg.epochs,
                  **cfg.recipe_options(cfg.opt, cfg.sched, cfg.epochs))


def supervised(name: str) -> ArmFactory:
    def factory(ctx: RunContext) -> SupervisedArm:
        return SupervisedArm(name, ctx.cfg.epochs, len(ctx.data.train),
                             mixtrain_recipe(ctx.cfg), ctx.plan_generator())
    return factory


def mixtrain(ctx: RunContext) -> MixTrainArm:
    cfg = ctx.cfg
    return MixTrainArm(MixTrainSettings.from_options(cfg), cfg.epochs, len(ctx.data.train),
                       mixtrain_recipe(cfg), ctx.model_info, ctx.data.img_size,
                       ctx.runtime.device, seed=cfg.seed, dist=ctx.dist)


def _method_inputs(ctx: RunContext) -> list[int]:
    """The mixtrain arm's inputs per epoch, as measured in this run: what a comparison arm is
    matched to."""
    return [int(r["inputs"]) for r in ctx.method_result().rows]


def short(ctx: RunContext) -> SupervisedArm:
    """Early termination done right (§5.3): the baseline recipe over fewer epochs, its whole
    schedule (warmup, cosine to --min-lr, or the step decays at the same fractions of the run)
    compressed into them; the epoch count is mixtrain's total inputs in whole epochs, rounded to
    the nearest (at least 1)."""
    n = len(ctx.data.train)
    epochs = short_epochs(n, sum(_method_inputs(ctx)))
    recipe = mixtrain_recipe(ctx.cfg).compressed(epochs)
    return SupervisedArm("short", epochs, n, recipe, ctx.plan_generator())


def skip(ctx: RunContext) -> SupervisedArm:
    """Random mini-batch skipping (§5.3): every epoch of the baseline recipe, each trained on a
    random subset as large as mixtrain's inputs in that same epoch."""
    return SupervisedArm("skip", ctx.cfg.epochs, len(ctx.data.train), mixtrain_recipe(ctx.cfg),
                         ctx.plan_generator(), budget=_method_inputs(ctx))


def infobatch(ctx: RunContext) -> InfoBatchArm:
    n, cfg = len(ctx.data.train), ctx.cfg
    targets = prune_targets(cfg.epochs, n, _method_inputs(ctx), cfg.infobatch_delta)
    return InfoBatchArm("infobatch", cfg.epochs, n, mixtrain_recipe(cfg), ctx.plan_generator(),
                        targets, ctx.runtime.device, ctx.dist)


def seta(ctx: RunContext) -> SeTaArm:
    cfg = ctx.cfg
    settings = SeTaSettings(cfg.seta_prune_ratio, cfg.seta_num_group, cfg.seta_window_scale,
                            cfg.seta_delta)
    return SeTaArm("seta", cfg.epochs, len(ctx.data.train), mixtrain_recipe(cfg),
                   ctx.plan_generator(), settings, ctx.runtime.device,
                   targets=_method_inputs(ctx), dist=ctx.dist)


for _name, _factory, _help in (
        ("short", short, "the baseline recipe over fewer epochs, its whole schedule"),
        ("skip", skip, "random mini-batch skipping (mixTrain §5.3)"),
        ("infobatch", infobatch, "InfoBatch (Qin et al., ICLR 2024)"),
        ("seta", seta, "SeTa (Zhou et al., CVPR 2025)")):
    register_comparison(_name, _factory, _help, replace=True)


def _mixtrain_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    """baseline, mixtrain, then the --compare arms (they are matched to mixtrain's cost)."""
    base = [("baseline", supervised("baseline"))] if cfg.baseline else []
    return base + [("mixtrain", mixtrain)] + [(c, comparison(c).factory)
                                              for c in cfg.compare_arms]


def _mixtrain_setup(ctx: RunContext) -> None:
    if ctx.data.multitask:
        raise UserError(f"`mixkit mixtrain` trains one task; --data {ctx.cfg.data} names "
                        f"{len(ctx.data.tasks)}.", hint="Pass one dataset to --data.")
    check_op(ctx.cfg.op, ctx.model_info, ctx.data.img_size)




def _figures(runs: list[Any]) -> dict[str, Any]:
    """mixTrain's own figures (Fig. 6-style thresholds, mixed fraction, regions), by file stem."""
    if not any(r.arm_rows("mixtrain") for r in runs):
        return {}
    from mixkit import plots

    return {"mixing": plots.mixing(runs), "thresholds": plots.thresholds(runs),
            "regions": plots.regions(runs)}


MIXTRAIN = register_command(CommandSpec(
    "mixtrain", _mixtrain_arms, method_arm="mixtrain", baseline_arm="baseline",
    setup=_mixtrain_setup, config_cls=MixtrainConfig, figures=_figures,
    help="mixTrain (Krithivasan et al. 2024): train on mixed pairs of inputs, chosen per epoch "
         "by loss, for fewer batches per epoch."))
