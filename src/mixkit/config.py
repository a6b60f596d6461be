"""Dataclass configs: one field per option, validated on load, YAML in and out.

A config is a flat dataclass, like timm's ``args.yaml``: every CLI flag is a field, every field
is a YAML key, and each field's ``metadata`` carries its help line and its valid range, so the
CLI, the YAML loader and the validator read one source of truth (no option can exist in one
place and not the other).

Precedence, lowest to highest: dataclass default < ``-c/--config FILE.yaml`` < CLI flags.
The resolved config is written to ``RUN_DIR/config.yaml`` and ``--config`` re-runs it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from mixkit.engine.optim import OPTIMIZERS, SCHEDULES
from mixkit.data.transforms import parse_pair
from mixkit.errors import UserError


ROLES = ("experiment", "seed", "run", "name", "action")
EMA_DECAY_DEFAULT = 0.9998      # timm's --model-ema-decay


def option(
    default: Any,
    help: str,
    *,
    short: str | None = None,
    choices: tuple[str, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    flag: str | None = None,
    role: str = "experiment",
    bench: bool | None = None,
) -> Any:
    """A config field with its CLI help line, valid range and role.

    ``role`` says what the key means to a run,
    the one place the key classes are derived from (:func:`keys_with`: the keys ``--resume`` may
    change, those that do not make another experiment in ``mixkit report``, the flag-only ones,
    and the benchmarks' options):

    * ``experiment``: what is trained (data, model, recipe, method): fixed on ``--resume``;
      runs that differ in one are different experiments in ``mixkit report``;
    * ``seed``: which repetition: fixed on ``--resume``, pooled as seeds by the report;
    * ``run``: where and how it runs and what it writes (device, workers, loggers, plots):
      may change on ``--resume``, never makes another experiment;
    * ``name``: where the run directory goes (``--output``, ``--experiment``);
    * ``action``: acts on one invocation (``--overwrite``, ``--resume``): a command-line flag
      only, never read from a config file nor written to ``config.yaml`` (every other key is
      written, so ``--resume`` and ``--config`` repeat what the run wrote, not the defaults).

    ``bench``: offered by the benchmark scripts (default: not for ``name``/``action`` keys).
    """
    assert role in ROLES, role
    meta = {"help": help, "short": short, "choices": choices, "min": min, "max": max,
            "gt": gt, "flag": flag, "role": role,
            "bench": role not in ("name", "action") if bench is None else bench}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Options shared by both training commands (data core, model core, engine, run dir).

    Epoch counts and learning-rate recipes differ by command (one recipe for mixTrain, an SSL
    and an SL recipe for MixTraining), so they live in the command's own config.
    """

    # --- data core -------------------------------------------------------------------------
    data: str = option("digits", "Dataset name (see `mixkit datasets`).")
    data_dir: Optional[str] = option(
        None, "Data root. Default: $MIXKIT_DATA_DIR, else the user cache dir. For "
        "`imagefolder`, the image tree itself.", role="run")
    download: bool = option(False, "Download the dataset into the data root if it is missing.", role="run")
    data_fraction: float = option(
        1.0, "Stratified, seeded fraction of the training split to use (0, 1].", gt=0.0, max=1.0)
    img_size: Optional[int] = option(
        None, "Training image size in px. Default: the dataset's (digits/CIFAR/SVHN 32, "
        "TinyImageNet 64, imagefolder 64).", min=8, max=1024)
    crop_padding: int = option(4, "Random-crop padding in px (0 disables the crop).", min=0, max=64)
    hflip: Optional[bool] = option(
        None, "Random horizontal flip. Default: on where it keeps the class (not digits/SVHN).")
    train_transform: str = option(
        "auto", "Training crop: `rrc` = RandomResizedCrop (--scale, --ratio; evaluation resizes "
        "the shorter side to img_size / --crop-pct and centre-crops: the ImageNet recipe), "
        "`crop` = zero-padded random crop (--crop-padding) of the image resized to the square "
        "--img-size (the CIFAR recipe); `auto` = rrc for streamed folders (imagefolder, "
        "imagenet), crop for in-memory datasets.", choices=("auto", "rrc", "crop"))
    scale: str = option("0.08,1.0", "RandomResizedCrop area range, as fractions of the image "
                        "(timm's --scale).")
    ratio: str = option("0.75,1.3333333333", "RandomResizedCrop aspect-ratio range, "
                        "log-uniform (timm's --ratio).")
    interpolation: str = option("bilinear", "Resampling of the crops (timm's --interpolation).",
                                choices=("bilinear", "bicubic", "nearest"))
    crop_pct: float = option(0.875, "Evaluation with --train-transform rrc: resize the shorter "
                             "side to img_size / crop_pct, then centre-crop (timm's "
                             "--crop-pct; 0.25-1.5, so the evaluation resize stays within 4x "
                             "the crop).", min=0.25, max=1.5)
    val_fraction: float = option(
        0.2, "Held-out validation fraction for datasets without a test split (digits, "
        "imagefolder without val/).", gt=0.0, max=0.9)
    val_size: Optional[int] = option(
        None, "Evaluate on a stratified, fixed (seed 0) subset of this many validation images, "
        "the same for every arm and seed (default: the whole split). Makes per-epoch evaluation "
        "affordable on a CPU; report it with the numbers.", min=10, max=1 << 30)
    workers: int = option(4, "DataLoader workers for streamed datasets (imagefolder).", min=0, max=128, role="run")
    # --- model core ------------------------------------------------------------------------
    model: str = option("resnet18", "timm model name (see `mixkit models`), random init.")
    patch_size: Optional[int] = option(
        None, "ViT/Swin patch size. Default: a 16x16 patch grid, never finer than half the "
        "data's stored size (2 at 32 px CIFAR, 4 at 64 px TinyImageNet, 8 for 32-px digits).", min=1, max=64)
    # --- optimisation ----------------------------------------------------------------------
    batch_size: int = option(128, "Mini-batch size (inputs per step).", short="-b", min=1,
                          max=1 << 20)
    opt: str = option("adamw", "Optimiser (timm's names): adamw (decoupled weight decay) or sgd "
                   "(momentum SGD, coupled L2 weight decay, as He et al. 2015).",
                   choices=OPTIMIZERS)
    momentum: Optional[float] = option(None, "SGD momentum (default 0.9 with --opt sgd; AdamW's "
                                    "is its beta1).", min=0.0, max=0.999)
    nesterov: Optional[bool] = option(None, "Nesterov momentum for --opt sgd (default off, as the "
                                   "papers' recipes; timm's `--opt sgd` means on).")
    sched: str = option("cosine", "Learning-rate schedule after the warm-up (timm's names): cosine "
                     "to --min-lr, step (x --decay-rate every --decay-epochs), multistep (x "
                     "--decay-rate at each of --decay-milestones) or none (constant).",
                     choices=SCHEDULES)
    decay_epochs: Optional[float] = option(
        None, "--sched step: epochs between decays (default 30, He et al.).", gt=0.0,
        max=100000)
    decay_milestones: Optional[str] = option(
        None, "--sched multistep: epochs at which the lr is multiplied by --decay-rate, "
        "comma-separated and increasing (He et al.'s ImageNet recipe: 30,60 of 90).")
    decay_rate: float = option(0.1, "Factor of each step/multistep decay (timm's --decay-rate).",
                            gt=0.0, max=1.0)
    min_lr: float = option(1e-6, "Learning rate at the end of the cosine schedule.", min=0.0,
                        max=10.0)
    weight_decay: Optional[float] = option(
        None, "Weight decay, not applied to norms and biases (default: 0.05 for adamw, 1e-4 "
        "for sgd as He et al.).", min=0.0, max=10.0)
    smoothing: float = option(0.0, "Label smoothing of the cross-entropy the arms train with "
                           "(timm's --smoothing; mixTrain's selection still records the plain "
                           "cross-entropy, docs/mixtrain.md).", min=0.0, max=0.99)
    model_ema: bool = option(False, "Keep an exponential moving average of the weights (timm's "
                          "--model-ema), updated after every optimiser step and evaluated "
                          "beside the live weights (val_acc_ema).")
    model_ema_decay: float = option(EMA_DECAY_DEFAULT, "EMA decay per optimiser step (timm's default).",
                                 gt=0.0, max=0.999999)
    model_ema_warmup: bool = option(False, "EMA decay warm-up (timm's --model-ema-warmup): the "
                                 "decay at step k is min(decay, 1 - (1 + k)^(-2/3)), so a short "
                                 "run's EMA is not dominated by its initial weights.")
    # --- runtime ---------------------------------------------------------------------------
    seed: int = option(0, "Random seed (model init, data subset, plans, augmentation).", min=0,
                    max=2**63 - 1, role="seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", role="run")
    amp: Optional[bool] = option(
        None, "Automatic mixed precision (autocast). Default: on with bfloat16 on a CUDA GPU that "
        "supports it, off on CPU and MPS (--no-amp turns it off).")
    amp_dtype: str = option("bfloat16", "AMP dtype.", choices=("bfloat16", "float16"))
    channels_last: Optional[bool] = option(
        None, "channels_last memory format. Default: on for CNNs on CUDA, off elsewhere "
        "(--no-channels-last turns it off).")
    torchcompile: bool = option(False, "Compile the model with torch.compile (compilation time is "
                             "billed to no arm: reported as compile_seconds).")
    compile_mode: str = option(
        "default", "torch.compile mode (with --torchcompile, inductor only); reduce-overhead "
        "uses CUDA graphs.",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"))
    compile_backend: str = option(
        "inductor", "torch.compile backend (with --torchcompile): inductor, or another of "
        "torch._dynamo.list_backends() (aot_eager / eager trace without code generation: to "
        "tell a tracing problem from a code-generation one).")
    timing_warmup: int = option(
        2, "Untimed warm-up steps before the first arm, so one-time costs (thread pools, "
        "allocator, kernel selection) are billed to no arm (0 disables).", min=0, max=10000, role="run")
    log_interval: int = option(25, "Steps between progress refreshes (one device read each).",
                            min=1, max=1 << 20, role="run")
    # --- run directory ---------------------------------------------------------------------
    output: str = option("runs", "Parent folder of run directories.", role="name")
    experiment: Optional[str] = option(
        None, "Run name (default: <command>-<data>-<model>-<timestamp>).", role="name")
    baseline: bool = option(True, "Run the baseline arm(s) side by side (--no-baseline skips).", role="experiment", bench=False)
    log_tensorboard: bool = option(
        False, "Log every arm's per-epoch metrics and the summary as TensorBoard event files "
        "under RUN_DIR/tb/<arm>/ (needs `pip install -e \".[tensorboard]\"`).", role="run")
    log_wandb: bool = option(
        False, "Log every arm's per-epoch metrics and the summary to Weights & Biases, files "
        "under RUN_DIR/wandb/ (needs `pip install -e \".[wandb]\"`).", role="run")
    wandb_project: str = option("mixkit", "W&B project name (with --log-wandb).", role="run")
    wandb_mode: str = option("auto", "W&B mode: auto = offline unless WANDB_API_KEY/WANDB_MODE "
                             "say otherwise (then `wandb sync`), online or offline.",
                             choices=("auto", "online", "offline"), role="run")
    plots: bool = option(True, "Write the run's figures into RUN_DIR/plots when it finishes "
                      "(--no-plots skips).", role="run")
    save_weights: str = option(
        "method", "Which arms' trained classifiers to keep in RUN_DIR/weights/ARM.safetensors: the "
        "method's arm, every arm, or none.", choices=("method", "all", "none"), role="run")
    keep_checkpoint: bool = option(
        False, "Keep last.pt (optimiser state, RNGs) after the run completes; by default it is "
        "deleted then, as a completed run cannot be resumed.", role="run")
    overwrite: bool = option(False, "Replace an existing run directory of the same name.",
                          role="action")
    resume: Optional[str] = option(
        None, "Continue the run in this RUN_DIR exactly from its last checkpoint, with its saved "
        "config (only where and how it runs and what it writes may change: --device, "
        "--workers, --log-interval, --data-dir, the loggers, --no-plots, --save-weights, "
        "--keep-checkpoint).", role="action")


    # --- the optimiser recipe --------------------------------------------------------------
    # each command's (opt, sched, span in epochs, flag naming the span) of every recipe it builds
    def recipes(self) -> list[tuple[str, str, float, str]]:
        raise NotImplementedError

    def resolve(self, where: str) -> None:
        """Check the optimiser/schedule options against each other, then fill the defaults
        that depend on the optimiser, so ``config.yaml`` records what ran.

        An option that the chosen optimiser or schedule never reads (``--momentum`` with AdamW,
        ``--decay-milestones`` with cosine) is an error rather than silently ignored: it is a
        recipe the user believes they ran.
        """
        recipes = self.recipes()
        opts, scheds = {r[0] for r in recipes}, {r[1] for r in recipes}
        recipe = f"this run uses --opt {self.opt} --sched {self.sched}"
        ema = "this run has no --model-ema"
        unused = [("momentum", self.momentum is not None and "sgd" not in opts, "--opt sgd",
                   recipe),
                  ("nesterov", bool(self.nesterov) and "sgd" not in opts, "--opt sgd", recipe),
                  ("decay_epochs", self.decay_epochs is not None and "step" not in scheds,
                   "--sched step", recipe),
                  ("decay_milestones", self.decay_milestones is not None
                   and "multistep" not in scheds, "--sched multistep", recipe),
                  # a decay equal to the default is what every config.yaml records: not a choice
                  ("model_ema_decay", not self.model_ema and self.model_ema_decay
                   != EMA_DECAY_DEFAULT, "--model-ema", ema),
                  ("model_ema_warmup", not self.model_ema and self.model_ema_warmup,
                   "--model-ema", ema)]
        for name, bad, needs, why in unused:
            if bad:
                flag = flag_of(name)
                raise UserError(f"{where}: {flag} is only read with {needs}; {why}.",
                                hint=f"Drop {flag}, or add {needs}.")
        if "sgd" in opts:
            self.momentum = 0.9 if self.momentum is None else self.momentum
            self.nesterov = bool(self.nesterov)
            if self.nesterov and self.momentum == 0:
                raise UserError(f"{where}: --nesterov needs a momentum above 0 (Nesterov's "
                                "look-ahead is a momentum step); this run has --momentum 0.",
                                hint="Drop --nesterov, or give --momentum 0.9.")
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[recipes[0][0]]
        # --ratio within [1/10, 10]: a crop more elongated than 10:1 is no image's view, and at
        # 100:1 a small image's box rounds to 0 px
        for flag, value, lo, hi, eg in (("--scale", self.scale, 0.0, 1.0, "0.08,1.0"),
                                        ("--ratio", self.ratio, 0.1, 10.0, "0.75,1.333")):
            pair = parse_pair(value)
            if pair is None or not (0 < pair[0] and lo <= pair[0] <= pair[1] <= hi):
                low = f"{lo:g} <= lo" if lo else "0 < lo"
                raise UserError(f"{where}: {flag} {_short(value)} must be two numbers lo,hi with "
                                f"{low} <= hi <= {hi:g}.", hint=f"E.g. {flag} {eg}.")
        for _, sched, span, flag in recipes:
            self._check_decay(where, sched, span, flag)

    def _check_decay(self, where: str, sched: str, span: float, flag: str) -> None:
        """Step/multistep decays must fall inside the recipe's span, milestones increasing."""
        if sched == "step" and self.decay_epochs is not None and self.decay_epochs >= span:
            raise UserError(f"{where}: --decay-epochs {self.decay_epochs:g} is not shorter than "
                            f"the run ({flag} {span:g}): the learning rate would never decay.",
                            hint="Give a shorter --decay-epochs, or --sched none.")
        if sched != "multistep" or self.decay_milestones is None:
            return
        try:
            ms = self.milestones(span)
        except ValueError:
            raise UserError(f"{where}: --decay-milestones {_short(self.decay_milestones)} is not "
                            "a comma-separated list of epochs.", hint="E.g. 30,60.") from None
        if not all(math.isfinite(m) for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])) \
                or ms[0] <= 0 or ms[-1] >= span:      # NaN fails every comparison: checked first
            raise UserError(f"{where}: --decay-milestones {self.decay_milestones} must be "
                            f"increasing epochs inside the run (0 < m < {flag} {span:g}).",
                            hint="E.g. --decay-milestones 30,60 for a 90-epoch run.")

    def milestones(self, span: float) -> tuple[float, ...]:
        """``--decay-milestones`` as numbers; by default a third and two thirds of the span
        (He et al.'s 30 and 60 of 90)."""
        if self.decay_milestones is None:
            return (round(span / 3), round(2 * span / 3))
        return tuple(float(m) for m in str(self.decay_milestones).split(","))

    def recipe_options(self, opt: str, sched: str, span: float) -> dict[str, Any]:
        """The :class:`~mixkit.engine.optim.Recipe` fields these options set, for a recipe of
        ``opt`` and ``sched`` over ``span`` epochs."""
        out: dict[str, Any] = {"opt": opt, "sched": sched, "decay_rate": self.decay_rate,
                               "smoothing": self.smoothing}
        # only the fields the optimiser and schedule read; the rest keep Recipe's defaults, so
        # a recipe equals the one a checkpoint written before these options restores (a
        # difference would rebuild the optimiser on resume)
        if opt == "sgd":
            out["momentum"] = 0.9 if self.momentum is None else self.momentum
            out["nesterov"] = bool(self.nesterov)
        if sched == "step":
            out["decay_epochs"] = self.decay_epochs or max(round(span / 3), 1)
        if sched == "multistep":
            out["decay_milestones"] = self.milestones(span)
        return out


COMPARE_ARMS = ("short", "skip", "infobatch", "seta")     # the built-in ones (for help)
# the defaults that depend on --opt: AdamW as timm/MAE, SGD as He et al. (2015)
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "sgd": 1e-4}
DEFAULT_LR = {"adamw": 2e-3, "sgd": 0.1}
DEFAULT_LR_BASE = {"adamw": 1e-3, "sgd": 0.1}


@dataclass
class MixtrainConfig(TrainConfig):
    """`mixkit mixtrain` (Krithivasan et al. 2024).

    The defaults are the setting measured best on the embedded digits (docs/benchmarks.md,
    5 seeds: MixUp 1.36x at -0.56 +- 0.94 points; CutMix at 1.41x lost 1.78 points, and
    ResNet-18 at 10 epochs was still climbing, so mixTrain's fewer steps cost it 9 points).
    """

    model: str = option("mobilenetv2_050", "timm model name (see `mixkit models`), random init.")
    batch_size: int = option(64, "Mini-batch size (inputs per step).", short="-b", min=1,
                          max=1 << 20)
    epochs: int = option(20, "Training epochs per arm.", min=1, max=100000)
    lr: Optional[float] = option(None, "Peak learning rate, not scaled by the batch size (default: "
                              "2e-3 for adamw, 0.1 for sgd).", gt=0.0, max=10.0)
    warmup_epochs: float = option(1.0, "Linear warmup length in epochs (clipped to half the run).",
                               min=0.0, max=100000)
    op: str = option("mixup", "Mixing operator: mixup (adaptive ratios, §4.1.2) or cutmix (with "
                  "split propagation, §4.1.1).", choices=("cutmix", "mixup"))
    split_prop: bool = option(True, "CutMix split propagation (§4.1.1); --no-split-prop: plain "
                           "CutMix with the area-weighted loss of Eq. (2).")
    adaptive: bool = option(True, "MixUp adaptive ratio r = L_a/(L_a+L_b) (§4.1.2); "
                         "--no-adaptive: r = 0.5.")
    selective: bool = option(True, "Selective mixing by loss region (§4.2); --no-selective: mix a "
                          "random --naive-fraction of the dataset every epoch.")
    naive_fraction: float = option(0.5, "Fraction of the dataset mixed per epoch with "
                                "--no-selective.", gt=0.0, max=1.0)
    thresholds: str = option("cumulative", "How L_corr/L_incorr average unmixed losses: over every "
                          "sample-epoch so far (the paper's running average), the last epoch "
                          "only, or (beyond the paper) the mean of the per-epoch means.",
                          choices=("cumulative", "last", "epochs"))
    cutmix_anchor: str = option(
        "any", "Where a CutMix box may sit: `any` position on the grid (the paper) or, beyond the "
        "paper, `edge` (touching two borders: at area 0.5 always a half-image, never a middle "
        "band).", choices=("any", "edge"))
    r3_from: str = option("unmixed", "Which samples the Region 3 rule (mix a hard sample whose loss "
                       "rose) applies to: `unmixed` = those trained unmixed this epoch (the "
                       "paper's text); `all` = mixed ones too, judged by their mixed loss.",
                       choices=("unmixed", "all"))
    r1_entry: str = option("loss", "Which samples may enter Region 1 (mixed): `loss` = loss below "
                        "L_mid (the paper); `correct` = beyond the paper, also classified "
                        "correctly (samples already mixed stay while below L_mid).",
                        choices=("loss", "correct"))
    cutmix_area: float = option(0.5, "Area of the pasted CutMix box, as a fraction of the final "
                             "feature grid (snapped to whole cells).", gt=0.0, max=0.99)
    split_loss: str = option(
        "sample", "How split-propagated CutMix weighs its two constituents: `sample` = each is a "
        "whole training sample (the paper, §4.1.1); `share` = beyond the paper, each weighted by "
        "the share of the image it owns, so a mixed input weighs one input.",
        choices=("sample", "share"))
    final_unmixed_epochs: int = option(
        0, "Beyond the paper: train the last K epochs without mixing (losses are still "
        "recorded). 0 = the paper's method.", min=0, max=100000)
    compare: str = option(
        "", "Comparison arms run after the mixtrain arm, each at mixtrain's measured cost "
        "(inputs): short (fewer epochs, full schedule), skip (random mini-batch skipping), "
        "infobatch (Qin et al. 2024), seta (Zhou et al. 2025). Comma-separated; empty = none.")
    infobatch_delta: float = option(
        0.875, "InfoBatch's annealing: prune only in the first delta of the epochs, train the "
        "rest on the full data (Qin et al.: 0.875).", gt=0.0, max=1.0)
    seta_prune_ratio: Optional[float] = option(
        None, "SeTa's prune_ratio (keep = clip(1 - r, 0.1, 1) random samples before "
        "clustering). Default: keep tuned per epoch so SeTa trains on mixtrain's inputs; a "
        "number runs SeTa's own fixed rule (official CIFAR script: 0.1) at its own cost.",
        min=0.0, max=0.99)
    seta_num_group: int = option(5, "SeTa's num_group: loss clusters per pruning epoch (1-D "
                                 "k-means; official CIFAR script: 5, class default: 10).",
                                 min=1, max=1000)
    seta_window_scale: float = option(
        0.9, "SeTa's window_scale: the sliding window keeps round(num_group * window_scale) "
        "clusters, easy to hard (official CIFAR script: 0.9, class default: 0.5).", gt=0.0,
        max=1.0)
    seta_delta: float = option(0.875, "SeTa's delta: prune in the first delta of the epochs, "
                               "then partial annealing (a random keep fraction).", gt=0.0,
                               max=1.0)


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
                            f"of comparison arms ({', '.join(COMPARE_ARMS)}, or one a "
                            "plugin registered).", hint="E.g. --compare short,skip,infobatch.")

    @property
    def compare_arms(self) -> list[str]:
        return [c.strip() for c in self.compare.split(",") if c.strip()]


@dataclass
class MixtrainingConfig(TrainConfig):
    """`mixkit mixtraining` (Li et al. 2025).

    Two AdamW recipes, as Table 7 gives them: the SSL recipe (``ssl_*``) and the SL recipe
    (``lr_base``, ``warmup_epochs``, ``weight_decay``, ``beta2``). Learning rates scale with the
    batch size as timm's ``--lr-base`` does: ``lr = lr_base * batch_size / 256`` unless ``--lr``
    / ``--ssl-lr`` give the peak value directly.
    """

    model: str = option("vit_tiny_patch16_224", "timm ViT name (see `mixkit models`), random init; "
                     "the MAE objective needs patch tokens.")
    epochs_ssl: int = option(100, "e_ssl: self-supervised (MAE) epochs of the SSL+SL pipeline.",
                          min=0, max=100000)
    epochs_sl: int = option(100, "e_sl: supervised epochs.", min=1, max=100000)
    rho: float = option(0.5, "MIX-RATIO rho: e_mix = floor(rho * min(e_ssl, e_sl)), Eq. (1).",
                     min=0.0, max=1.0)
    alpha: float = option(0.5, "LOSS-RATIO alpha: mix-phase loss alpha*l_ssl + (1-alpha)*l_sl, "
                       "Eq. (3).", min=0.0, max=1.0)
    lam: float = option(0.5, "lambda of the mixed dataset, Eq. (2): x = lam*x_sl + (1-lam)*x_ssl "
                     "(only with --ssl-data).", min=0.0, max=1.0)
    ssl_data: Optional[str] = option(
        None, "SSL dataset when it differs from --data (e.g. tinyimagenet for --data cifar10); "
        "resized to the SL image size. Default: the SL data (D_mix = D_sl).")
    mix_forward: str = option("shared", "Mix-phase forward: `shared` runs the encoder once on all "
                           "patches for both heads (App. A.2); `separate` adds a masked MAE "
                           "encoder pass (one backward either way).",
                           choices=("shared", "separate"))
    mask_ratio: float = option(0.75, "MAE mask ratio (fraction of patches hidden).", gt=0.0,
                            max=0.99)
    norm_pix_loss: bool = option(False, "MAE target: per-patch normalised pixels.")
    decoder_depth: int = option(2, "MAE decoder blocks (App. A.3: 2).", min=1, max=64)
    decoder_dim: int = option(192, "MAE decoder width (App. A.3: 192 for ViT-Tiny).", min=8,
                           max=8192)
    decoder_heads: int = option(3, "MAE decoder attention heads (App. A.3: 3).", min=1, max=128)
    lr: Optional[float] = option(None, "SL peak learning rate. Default: --lr-base * batch / 256.",
                              gt=0.0, max=10.0)
    lr_base: Optional[float] = option(None, "SL base learning rate per 256 images (default: 1e-3 "
                                   "for adamw as Table 7, 0.1 for sgd).", gt=0.0, max=10.0)
    warmup_epochs: float = option(5.0, "SL warmup epochs (Table 7; clipped to half the SL span).",
                               min=0.0, max=100000)
    beta2: float = option(0.95, "SL AdamW beta2 (Table 7).", gt=0.0, max=0.99999)
    layer_decay: float = option(1.0, "SL layer-wise lr decay (MAE fine-tuning, BEiT): ViT block i "
                             "of L trains at lr * d^(L+1-i), the patch embedding at d^(L+1), "
                             "the heads at lr. 1 = off (Table 7 has none).", gt=0.0, max=1.0)
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
# validation
# ------------------------------------------------------------------------------------------


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _all_fields() -> dict[str, dataclasses.Field]:
    """Every option of both commands by name (a name means the same option in both)."""
    return {f.name: f for cls in (MixtrainConfig, MixtrainingConfig) for f in fields(cls)}


def flag_of(name: str) -> str:
    """The command-line flag of config key ``name`` (``--a-b`` for ``a_b`` unless the field
    names its own): the one derivation the CLI, the messages and the benchmarks share."""
    f = _all_fields().get(name)
    return _flag(f) if f is not None else "--" + name.replace("_", "-")


def keys_with(*roles: str) -> frozenset[str]:
    """The config keys of both commands whose ``role`` is one of ``roles``."""
    return frozenset(n for n, f in _all_fields().items() if f.metadata["role"] in roles)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def field_types(cls: type) -> dict[str, tuple[Any, bool]]:
    """``name -> (base type, optional)`` for every field of a config class."""
    hints = typing.get_type_hints(cls)
    return {f.name: _unwrap_optional(hints[f.name]) for f in fields(cls)}


def _short(value: Any) -> str:
    """A value for a message, never longer than a line (a hostile file cannot flood stderr)."""
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 60, 60, 6, 6, 2
    return r.repr(value)


def _coerce(name: str, value: Any, tp: Any, optional: bool, where: str) -> Any:
    flag = flag_of(name)
    if value is None:
        if optional:
            return None
        raise UserError(f"{where}: `{name}` ({flag}) must be set; null is not allowed.")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if name in NUMBER_LISTS and isinstance(value, list) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return ",".join(f"{v:g}" for v in value)      # YAML [30, 60] for a list option
    hint = f"Fix the value of `{name}`."
    if tp in (int, float) and isinstance(value, str) and _is_number(value):
        hint = (f"YAML 1.1 (which PyYAML reads) takes `{value}` for a string: a float needs a "
                f"dot in its mantissa, e.g. `{name}: {_yaml_float(value)}`.")
    raise UserError(
        f"{where}: `{name}` ({flag}) must be {tp.__name__}, got {type(value).__name__} "
        f"{_short(value)}.", hint=hint)


# options that are comma-separated numbers and may be written as a YAML list
NUMBER_LISTS = frozenset({"decay_milestones", "scale", "ratio"})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_float(text: str) -> str:
    """``1e-3`` -> ``1.0e-3``: the spelling YAML 1.1 reads as a float."""
    mantissa, _, exp = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (f"e{exp}" if exp else "")


def _check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    if value is None:
        return
    m, flag = f.metadata, _flag(f)
    if m.get("choices") and value not in m["choices"]:
        raise UserError(f"{where}: {flag} must be one of {', '.join(m['choices'])}; got "
                        f"{_short(value)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):   # NaN fails every comparison
        raise UserError(f"{where}: {flag} is {value}, which is not a finite number.",
                        hint=f"Give {flag} a finite value.")
    lo, hi, gt = m.get("min"), m.get("max"), m.get("gt")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (
            gt is not None and value <= gt):
        low = f"> {gt}" if gt is not None else (f">= {lo}" if lo is not None else None)
        rng = " and ".join(s for s in (low, f"<= {hi}" if hi is not None else None) if s)
        raise UserError(f"{where}: {flag} is {value}, which is out of range: it must be {rng}.")


def check_experiment(name: str | None, where: str) -> None:
    """``--experiment`` is one path component under ``--output``: never ``.``, ``..``, a path
    separator, an absolute path or a control character, so a run directory can only ever be
    created, written or deleted at ``OUTPUT/NAME``."""
    if name is None:
        return
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    bad = (name in ("", ".", "..") or any(c in name for c in seps)
           or any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip()
           or len(os.fsencode(name)) > 200)
    if bad:
        raise UserError(f"{where}: --experiment {_short(name)} is not a plain run name: it must "
                        "be a single folder name under --output (no '/', '\\', '.', '..', "
                        "control characters or surrounding spaces, at most 200 bytes).",
                        hint="Pick a name such as `fmnist-cutmix-seed0`, and choose the parent "
                        "folder with --output.")


def _command_with(key: str, cls: type) -> str | None:
    """The other training command whose config has ``key`` (a config given to the wrong
    command), or None."""
    from mixkit.command import COMMANDS, command_names

    for name in command_names():
        other = COMMANDS[name].config_cls
        if other is not None and other is not cls and key in {f.name for f in fields(other)}:
            return name
    return None


def build_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build and validate a config of type ``cls`` from a mapping; raise UserError if bad."""
    types_ = field_types(cls)
    unknown = [k for k in values if k not in types_]
    if unknown:
        key = unknown[0]
        other = _command_with(str(key), cls)
        if other:
            raise UserError(f"{where}: `{key}` is an option of `mixkit {other}`, not of this "
                            "command: this looks like a config for the other command.",
                            hint=f"Run it with `mixkit {other} -c {where}`.")
        close = difflib.get_close_matches(str(key), list(types_), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"{where}: unknown config key `{str(key)[:60]}`.{hint}",
                        hint="Run with --help to see every option; each flag --a-b is YAML "
                        "key a_b.")
    kwargs = {k: _coerce(k, v, *types_[k], where) for k, v in values.items()}
    cfg = cls(**kwargs)
    for f in fields(cls):
        _check_range(f, getattr(cfg, f.name), where)
    cfg.resolve(where)
    check_experiment(getattr(cfg, "experiment", None), where)
    check = getattr(cfg, "check", None)
    if check is not None:
        check(where)
    return cfg


MAX_CONFIG_BYTES = 1 << 20      # a flat option: value file is a few kB


class _ConfigLoader(yaml.SafeLoader):
    """safe_load without aliases: a flat config never needs them, and an alias bomb (a few
    hundred bytes that expand to gigabytes) is refused before anything is expanded."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are not supported in mixkit "
                                 f"config files (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


# keys that act on this invocation only: they must be typed, never read from a file


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, oversized or bad file or a non-mapping is a UserError."""
    if path.is_dir():
        raise UserError(f"config file {path} is a folder, not a file.",
                        hint="Pass the path of a YAML file to -c/--config, e.g. "
                        "RUN_DIR/config.yaml.")
    if not path.is_file():
        raise UserError(f"config file {path} does not exist.",
                        hint="Pass the path of a YAML file to -c/--config.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is {path.stat().st_size} bytes; a mixkit config is "
                        f"a flat mapping of options and may be at most {MAX_CONFIG_BYTES} bytes.",
                        hint="Pass the right file to -c/--config.")
    try:
        data = yaml.load(path.read_text(), Loader=_ConfigLoader)  # noqa: S506 - safe loader
    except RecursionError:
        raise UserError(f"config file {path} is nested too deeply to be a mixkit config (a flat "
                        "mapping of option: value).", hint="Pass the right file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{at}: "
                        f"{getattr(exc, 'problem', exc)}.", hint="Fix the file and re-run.")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} cannot be read: {exc}.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value, "
                        f"not a {type(data).__name__}.")
    typed = [k for k in sorted(keys_with("action")) if k in data]
    if typed:
        raise UserError(f"config file {path} sets `{typed[0]}`, which acts on one invocation "
                        "and is only accepted as a command-line flag (a saved or shared config "
                        "must never delete or resume a run by itself).",
                        hint=f"Remove `{typed[0]}` from the file and pass "
                        f"{flag_of(typed[0])} on the command line.")
    return data


def load_config(cls: type, path: Path | None, overrides: dict[str, Any]) -> Any:
    """Defaults < YAML file < CLI overrides, validated once on the merged mapping."""
    values: dict[str, Any] = {}
    if path is not None:
        file_values = read_yaml(Path(path))
        build_config(cls, file_values, where=str(path))  # name the file if it alone is bad
        values.update(file_values)
    values.update(overrides)
    return build_config(cls, values, where="config")


def recipe_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as written to ``config.yaml`` (per-invocation actions left out)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.metadata["role"] != "action"}


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(recipe_dict(cfg), sort_keys=False)
