"""``mixkit mixtraining``: MixTraining's command — its three arms (``sl``, ``ssl+sl``,
``mixtraining``: one arm class, three schedules), options, setup, reconstructions and figures —
registered in :data:`mixkit.command.COMMANDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from mixkit.command import ArmFactory, CommandSpec, RunContext, register_command
from mixkit.config import DEFAULT_LR_BASE, TrainConfig
from mixkit.data import DataOptions, load_data
from mixkit.data.registry import get_spec
from mixkit.engine.loop import ArmResult
from mixkit.engine.optim import OPTIMIZERS, SCHEDULES, Recipe
from mixkit.runio.rundir import RunDir, writing
from mixkit.errors import UserError
from mixkit.methods.mixtraining.schedule import Schedule
from mixkit.methods.mixtraining.settings import MixTrainingSettings
from mixkit.options import option, settings_options
from mixkit.run_reader import number

if TYPE_CHECKING:       # the method's modules (torch models, timm) load when the command runs
    from mixkit.methods.mixtraining.method import MixTrainingArm
    from mixkit.methods.mixtraining.objectives import MAE
    from mixkit.models.mae import Mask

# ------------------------------------------------------------------------------------------
# options
# ------------------------------------------------------------------------------------------


@dataclass
@settings_options(MixTrainingSettings)
class MixtrainingConfig(TrainConfig):
    """`mixkit mixtraining` (Li et al. 2025).

    Two AdamW recipes, as Table 7 gives them: the SSL recipe (``ssl_*``) and the SL recipe
    (``lr_base``, ``warmup_epochs``, ``weight_decay``, ``beta2``). Learning rates scale with the
    batch size as timm's ``--lr-base`` does: ``lr = lr_base * batch_size / 256`` unless ``--lr``
    / ``--ssl-lr`` give the peak value directly.
    """

    model: str = option("vit_tiny_patch16_224", "timm ViT name (see `mixkit models`), random init; "
                     "the MAE objective needs patch tokens.", panel="Model")
    epochs_ssl: int = option(100, "e_ssl: self-supervised (MAE) epochs of the SSL+SL pipeline.",
                          min=0, max=100000)
    epochs_sl: int = option(100, "e_sl: supervised epochs.", min=1, max=100000)
    ssl_data: Optional[str] = option(
        None, "SSL dataset when it differs from --data (e.g. tinyimagenet for --data cifar10); "
        "resized to the SL image size. Default: the SL data (D_mix = D_sl).")
    lr: Optional[float] = option(None, "SL peak learning rate. Default: --lr-base * batch / 256.",
                              gt=0.0, max=10.0, panel="Recipe")
    lr_base: Optional[float] = option(None, "SL base learning rate per 256 images (default: 1e-3 "
                                   "for adamw as Table 7, 0.1 for sgd).", gt=0.0, max=10.0,
        panel="Recipe")
    warmup_epochs: float = option(5.0, "SL warmup epochs (Table 7; clipped to half the SL span).",
                               min=0.0, max=100000, panel="Recipe")
    beta2: float = option(0.95, "SL AdamW beta2 (Table 7).", gt=0.0, max=0.99999, panel="Recipe")
    layer_decay: float = option(1.0, "SL layer-wise lr decay (MAE fine-tuning, BEiT): ViT block i "
                             "of L trains at lr * d^(L+1-i), the patch embedding at d^(L+1), "
                             "the heads at lr. 1 = off (Table 7 has none).", gt=0.0, max=1.0,
        panel="Recipe")
    ssl_lr: Optional[float] = option(None, "SSL peak learning rate. Default: --ssl-lr-base * "
                                  "batch / 256.", gt=0.0, max=10.0)
    ssl_lr_base: float = option(1.5e-4, "SSL base learning rate per 256 images (Table 7).", gt=0.0,
                             max=10.0)
    ssl_warmup_epochs: float = option(20.0, "SSL warmup epochs (Table 7; clipped to half the SSL "
                                   "span).", min=0.0, max=100000)
    ssl_weight_decay: float = option(0.05, "SSL AdamW weight decay (Table 7).", min=0.0, max=10.0)
    ssl_opt: str = option("adamw", "SSL optimiser (Table 7: adamw); --opt is the SL recipe's (SL "
                       "and mix phases).", choices=OPTIMIZERS)
    ssl_sched: str = option("cosine", "SSL schedule (Table 7: cosine); --sched is the SL recipe's. "
                         "Decays are counted from the recipe's own first epoch.",
                         choices=SCHEDULES)
    ssl_beta2: float = option(0.95, "SSL AdamW beta2 (Table 7).", gt=0.0, max=0.99999)

    @property
    def global_batch(self) -> int:
        """``batch_size`` per process times the torchrun world size (timm's convention)."""
        import os

        return self.batch_size * max(1, int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def sl_lr(self) -> float:
        return self.lr if self.lr is not None else self.lr_base * self.global_batch / 256

    @property
    def ssl_peak_lr(self) -> float:
        if self.ssl_lr is not None:
            return self.ssl_lr
        return self.ssl_lr_base * self.global_batch / 256

    def recipes(self) -> list[tuple[str, str, float, str]]:
        sl = [(self.opt, self.sched, float(self.epochs_sl), "--epochs-sl")]
        ssl = [(self.ssl_opt, self.ssl_sched, float(self.epochs_ssl), "--epochs-ssl")]
        return sl + (ssl if self.epochs_ssl > 0 else [])

    def resolve(self, where: str) -> None:
        super().resolve(where)
        if self.lr_base is None:
            self.lr_base = DEFAULT_LR_BASE[self.opt]

    def check(self, where: str) -> None:
        for name, peak in (("--lr", self.sl_lr), ("--ssl-lr", self.ssl_peak_lr)):
            if self.min_lr > peak:
                raise UserError(f"{where}: --min-lr ({self.min_lr}) is larger than the peak "
                                f"{name} ({peak:g}).", hint="Lower --min-lr.")


# ------------------------------------------------------------------------------------------


def _mixtraining_setup(ctx: RunContext) -> None:
    """Checks and SSL data, before the run dir exists (a bad value leaves nothing behind)."""
    from mixkit.methods.mixtraining.objectives import check_mae

    cfg = ctx.cfg
    if cfg.epochs_ssl > 0:
        why = check_mae(ctx.model_info, cfg.mask_ratio)
        if why:
            raise UserError(f"{why} (--model {cfg.model}, --mask-ratio {cfg.mask_ratio})",
                            hint="Use a ViT such as vit_tiny_patch16_224, or --epochs-ssl 0.")
    if cfg.ssl_data and cfg.ssl_data != cfg.data:
        get_spec(cfg.ssl_data, "--ssl-data")
        if ctx.data.multitask or "," in cfg.ssl_data:
            raise UserError("--ssl-data with multi-task --data is not supported.",
                            hint="Use one SL dataset with --ssl-data, or drop --ssl-data.")
        ssl = load_data(cfg.ssl_data, replace(DataOptions.from_options(cfg),
                                              img_size=ctx.data.img_size, data_fraction=1.0,
                                              channels_last=ctx.runtime.channels_last),
                        ctx.runtime.device, "mixtraining")
        if cfg.batch_size > len(ssl.train):
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the SSL data "
                            f"`{cfg.ssl_data}` ({len(ssl.train)} samples).")
        ctx.ssl_train = ssl.train


def _probe(ctx: RunContext, mae: MAE) -> tuple[torch.Tensor, Mask]:
    """The figure's fixed inputs: the first 8 validation images and one mask from the seed."""
    from mixkit.models.mae import random_masking

    x = next(iter(ctx.data.tasks[0][1].eval_batches(8)))[0]
    gen = torch.Generator(device=x.device).manual_seed(ctx.cfg.seed)
    return x, random_masking(x.shape[0], mae.num_patches, mae.mask_ratio, x.device, gen)


def recipes(cfg: Any, schedule: Schedule) -> tuple[Recipe, Recipe]:
    """The SSL and SL recipes (Table 7's AdamW + cosine by default), placed on the arm's epoch
    axis; each schedule's decays count from its own recipe's first epoch."""
    e_ssl = max(schedule.e_ssl, 1)
    ssl = Recipe("ssl", cfg.ssl_peak_lr, cfg.min_lr, cfg.ssl_weight_decay, cfg.ssl_warmup_epochs,
                 total=e_ssl, start=0.0, betas=(0.9, cfg.ssl_beta2),
                 **cfg.recipe_options(cfg.ssl_opt, cfg.ssl_sched, e_ssl))
    sl = Recipe("sl", cfg.sl_lr, cfg.min_lr, cfg.weight_decay, cfg.warmup_epochs,
                total=schedule.e_sl, start=float(schedule.sl_start), betas=(0.9, cfg.beta2),
                layer_decay=cfg.layer_decay,
                **cfg.recipe_options(cfg.opt, cfg.sched, schedule.e_sl))
    return ssl, sl


def mixtraining_arm(name: str, schedule_of: Callable[[Any], Schedule]) -> ArmFactory:
    def factory(ctx: RunContext) -> MixTrainingArm:
        from mixkit.methods.mixtraining.data import MixedSource
        from mixkit.methods.mixtraining.method import MixTrainingArm
        from mixkit.methods.mixtraining.objectives import MAE

        cfg, device = ctx.cfg, ctx.runtime.device
        mt = MixTrainingSettings.from_options(cfg)
        schedule = schedule_of(cfg)
        ssl_recipe, sl_recipe = recipes(cfg, schedule)
        mae = None
        if schedule.e_ssl > 0:
            mae = MAE(ctx.model_info, 3, mt.mask_ratio, mt.norm_pix_loss, mt.decoder_dim,
                      mt.decoder_depth, mt.decoder_heads,
                      torch.Generator(device=device).manual_seed(
                          ctx.dist.stream_seed(cfg.seed, 1)))
        ssl_train = ctx.ssl_train
        if ssl_train is not None:                 # every arm starts from the same streams
            ssl_train.generator.manual_seed(ctx.dist.stream_seed(cfg.seed))
        mix = None
        if ssl_train is not None and schedule.e_mix > 0:
            mix = MixedSource(ctx.data.train, ssl_train, mt.lam,
                              torch.Generator(device=device).manual_seed(
                                  ctx.dist.stream_seed(cfg.seed, 2)))
        return MixTrainingArm(
            name, schedule, ssl_recipe, sl_recipe, mae, alpha=mt.alpha,
            mix_forward=mt.mix_forward, num_samples=len(ctx.data.train),
            plan_generator=ctx.plan_generator(), num_tasks=len(ctx.data.tasks),
            ssl_source=ssl_train, mix_source=mix,
            probe=_probe(ctx, mae) if mae is not None else None, device=device, dist=ctx.dist,
            smoothing=cfg.smoothing)
    return factory


# the three arms of `mixkit mixtraining`: one arm class, three schedules (in run order)
SCHEDULES: dict[str, Callable[[Any], Schedule]] = {
    "sl": lambda c: Schedule(0, c.epochs_sl, 0.0),
    "ssl+sl": lambda c: Schedule(c.epochs_ssl, c.epochs_sl, 0.0),
    "mixtraining": lambda c: Schedule(c.epochs_ssl, c.epochs_sl, c.rho),
}


def _mixtraining_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    names = list(SCHEDULES) if cfg.baseline else ["mixtraining"]
    return [(n, mixtraining_arm(n, SCHEDULES[n])) for n in names]


def _mixtraining_finish(ctx: RunContext, results: dict[str, ArmResult], rundir: RunDir) -> None:
    """``reconstruction.png`` (Fig. 4): originals, masked, then each MAE arm's reconstruction."""
    from mixkit.methods.mixtraining.objectives import MAE
    from mixkit.methods.mixtraining.recon import save_grid

    recons = {n: r.artifacts["reconstruction"] for n, r in results.items()
              if "reconstruction" in r.artifacts}
    if not recons:
        return
    mae = MAE(ctx.model_info, 3, ctx.cfg.mask_ratio)
    x, m = _probe(ctx, mae)
    prep = ctx.data.tasks[0][1].prep
    with writing(rundir.path / "reconstruction.png"):
        save_grid(rundir.path / "reconstruction.png",
                  [x.cpu(), mae.masked_input(x, m, fill=0.0).cpu(), *recons.values()],
                  prep.mean, prep.std)
    rundir.write_json("reconstruction.json", {"rows": ["original", "masked", *recons]})


def _mixtraining_describe(ctx: RunContext) -> dict[str, Any]:
    c = ctx.cfg
    s = Schedule(c.epochs_ssl, c.epochs_sl, c.rho)
    return {"schedule": {"e_ssl": s.e_ssl, "e_sl": s.e_sl, "rho": c.rho, "e_mix": s.e_mix,
                         "phases": [list(p) for p in s.phases], "alpha": c.alpha,
                         "mix_forward": c.mix_forward, "ssl_data": c.ssl_data or c.data}}




def _figures(runs: list[Any]) -> dict[str, Any]:
    """MixTraining's own figures: its phases and the mix phase's two losses, by file stem."""
    from mixkit.commands import mixtraining_figures as f

    return {"phases": f.phases(runs[0]), "losses": f.losses(runs)}


MIXTRAINING = register_command(CommandSpec(
    "mixtraining", _mixtraining_arms, method_arm="mixtraining", baseline_arm="ssl+sl",
    compare_arms=("ssl+sl", "sl"), setup=_mixtraining_setup, describe=_mixtraining_describe,
    finish=_mixtraining_finish, cost="train_seconds", config_cls=MixtrainingConfig,
    figures=_figures, panel="MixTraining",
    colours={"sl": "#000000", "ssl+sl": "#E69F00", "mixtraining": "#0072B2"}, row_keys={
        k: number(None, null=True) for k in ("ssl_loss", "sl_loss")},   # the mix phase's two
    help="MixTraining (Li et al. 2025): SSL -> mix -> SL with one shared "
    "forward/backward in the mix phase."))
