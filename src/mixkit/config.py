"""The options both training commands share (:class:`TrainConfig`) and their resolution
(recipes, defaults that depend on the optimiser); each command's own options are in its
registration (:mod:`mixkit.commands`), the machinery in :mod:`mixkit.options`.

Dataclass configs: one field per option, validated on load, YAML in and out.

A config is a flat dataclass, like timm's ``args.yaml``: every CLI flag is a field, every field
is a YAML key, and each field's ``metadata`` carries its help line and its valid range, so the
CLI, the YAML loader and the validator read one source of truth (no option can exist in one
place and not the other).

Precedence, lowest to highest: dataclass default < ``-c/--config FILE.yaml`` < CLI flags.
The resolved config is written to ``RUN_DIR/config.yaml`` and ``--config`` re-runs it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional

from mixkit.engine.optim import OPTIMIZERS, SCHEDULES
from mixkit.data.transforms import parse_pair
from mixkit.errors import UserError
from mixkit.options import Options, flag_of, option, short_value


EMA_DECAY_DEFAULT = 0.9998      # timm's --model-ema-decay


@dataclass
class TrainConfig(Options, ABC):
    """Options shared by both training commands (data core, model core, engine, run dir).

    Epoch counts and learning-rate recipes differ by command (one recipe for mixTrain, an SSL
    and an SL recipe for MixTraining), so they live in the command's own config.
    """

    # --- data core -------------------------------------------------------------------------
    data: str = option("digits", "Dataset name (see `mixkit datasets`).", panel="Data")
    data_dir: Optional[str] = option(
        None, "Data root. Default: $MIXKIT_DATA_DIR, else the user cache dir. For "
        "`imagefolder`, the image tree itself.", role="run", panel="Data")
    download: bool = option(
        False, "Download the dataset into the data root if it is missing.", role="run",
        panel="Data")
    data_fraction: float = option(
        1.0, "Stratified, seeded fraction of the training split to use (0, 1].", gt=0.0, max=1.0,
        panel="Data")
    img_size: Optional[int] = option(
        None, "Training image size in px. Default: the dataset's (digits/CIFAR/SVHN 32, "
        "TinyImageNet 64, imagefolder 64).", min=8, max=1024, panel="Data")
    crop_padding: int = option(4, "Random-crop padding in px (0 disables the crop).", min=0, max=64,
        panel="Data")
    hflip: Optional[bool] = option(
        None, "Random horizontal flip. Default: on where it keeps the class (not digits/SVHN).",
        panel="Data")
    train_transform: str = option(
        "auto", "Training crop: `rrc` = RandomResizedCrop (--scale, --ratio; evaluation resizes "
        "the shorter side to img_size / --crop-pct and centre-crops: the ImageNet recipe), "
        "`crop` = zero-padded random crop (--crop-padding) of the image resized to the square "
        "--img-size (the CIFAR recipe); `auto` = rrc for streamed folders (imagefolder, "
        "imagenet), crop for in-memory datasets.", choices=("auto", "rrc", "crop"), panel="Data")
    scale: str = option("0.08,1.0", "RandomResizedCrop area range, as fractions of the image "
                        "(timm's --scale).", panel="Data")
    ratio: str = option("0.75,1.3333333333", "RandomResizedCrop aspect-ratio range, "
                        "log-uniform (timm's --ratio).", panel="Data")
    interpolation: str = option("bilinear", "Resampling of the crops (timm's --interpolation).",
                                choices=("bilinear", "bicubic", "nearest"), panel="Data")
    crop_pct: float = option(0.875, "Evaluation with --train-transform rrc: resize the shorter "
                             "side to img_size / crop_pct, then centre-crop (timm's "
                             "--crop-pct; 0.25-1.5, so the evaluation resize stays within 4x "
                             "the crop).", min=0.25, max=1.5, panel="Data")
    val_fraction: float = option(
        0.2, "Held-out validation fraction for datasets without a test split (digits, "
        "imagefolder without val/).", gt=0.0, max=0.9, panel="Data")
    val_size: Optional[int] = option(
        None, "Evaluate on a stratified, fixed (seed 0) subset of this many validation images, "
        "the same for every arm and seed (default: the whole split). Makes per-epoch evaluation "
        "affordable on a CPU; report it with the numbers.", min=10, max=1 << 30, panel="Data")
    workers: int = option(
        4, "DataLoader workers for streamed datasets (imagefolder).", min=0, max=128, role="run",
        panel="Data")
    # --- model core ------------------------------------------------------------------------
    model: str = option("resnet18", "timm model name (see `mixkit models`), random init.",
        panel="Model")
    patch_size: Optional[int] = option(
        None, "ViT/Swin patch size. Default: a 16x16 patch grid, never finer than half the "
        "data's stored size (2 at 32 px CIFAR, 4 at 64 px TinyImageNet, 8 for 32-px digits).",
        min=1, max=64, panel="Model")
    # --- optimisation ----------------------------------------------------------------------
    batch_size: int = option(128, "Mini-batch size (inputs per step).", short="-b", min=1,
                          max=1 << 20, panel="Recipe")
    opt: str = option("adamw", "Optimiser (timm's names): adamw (decoupled weight decay) or sgd "
                   "(momentum SGD, coupled L2 weight decay, as He et al. 2015).",
                   choices=OPTIMIZERS, panel="Recipe")
    momentum: Optional[float] = option(None, "SGD momentum (default 0.9 with --opt sgd; AdamW's "
                                    "is its beta1).", min=0.0, max=0.999, panel="Recipe")
    nesterov: Optional[bool] = option(None, "Nesterov momentum for --opt sgd (default off, as the "
                                   "papers' recipes; timm's `--opt sgd` means on).", panel="Recipe")
    sched: str = option("cosine", "Learning-rate schedule after the warm-up (timm's names): cosine "
                     "to --min-lr, step (x --decay-rate every --decay-epochs), multistep (x "
                     "--decay-rate at each of --decay-milestones) or none (constant).",
                     choices=SCHEDULES, panel="Recipe")
    decay_epochs: Optional[float] = option(
        None, "--sched step: epochs between decays (default 30, He et al.).", gt=0.0,
        max=100000, panel="Recipe")
    decay_milestones: Optional[str] = option(
        None, "--sched multistep: epochs at which the lr is multiplied by --decay-rate, "
        "comma-separated and increasing (He et al.'s ImageNet recipe: 30,60 of 90).",
        panel="Recipe")
    decay_rate: float = option(0.1, "Factor of each step/multistep decay (timm's --decay-rate).",
                            gt=0.0, max=1.0, panel="Recipe")
    min_lr: float = option(1e-6, "Learning rate at the end of the cosine schedule.", min=0.0,
                        max=10.0, panel="Recipe")
    weight_decay: Optional[float] = option(
        None, "Weight decay, not applied to norms and biases (default: 0.05 for adamw, 1e-4 "
        "for sgd as He et al.).", min=0.0, max=10.0, panel="Recipe")
    smoothing: float = option(0.0, "Label smoothing of the cross-entropy the arms train with "
                           "(timm's --smoothing; mixTrain's selection still records the plain "
                           "cross-entropy, docs/mixtrain.md).", min=0.0, max=0.99, panel="Recipe")
    model_ema: bool = option(False, "Keep an exponential moving average of the weights (timm's "
                          "--model-ema), updated after every optimiser step and evaluated "
                          "beside the live weights (val_acc_ema).", panel="Recipe")
    model_ema_decay: float = option(
        EMA_DECAY_DEFAULT, "EMA decay per optimiser step (timm's default).", gt=0.0,
        max=0.999999, panel="Recipe")
    model_ema_warmup: bool = option(False, "EMA decay warm-up (timm's --model-ema-warmup): the "
                                 "decay at step k is min(decay, 1 - (1 + k)^(-2/3)), so a short "
                                 "run's EMA is not dominated by its initial weights.",
        panel="Recipe")
    # --- runtime ---------------------------------------------------------------------------
    seed: int = option(0, "Random seed (model init, data subset, plans, augmentation).", min=0,
                    max=2**63 - 1, role="seed", panel="Recipe")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", role="run", panel="Devices")
    amp: Optional[bool] = option(
        None, "Automatic mixed precision (autocast). Default: on with bfloat16 on a CUDA GPU that "
        "supports it, off on CPU and MPS (--no-amp turns it off).", panel="Devices")
    amp_dtype: str = option("bfloat16", "AMP dtype.", choices=("bfloat16", "float16"),
        panel="Devices")
    channels_last: Optional[bool] = option(
        None, "channels_last memory format. Default: on for CNNs on CUDA, off elsewhere "
        "(--no-channels-last turns it off).", panel="Devices")
    torchcompile: bool = option(False, "Compile the model with torch.compile (compilation time is "
                             "billed to no arm: reported as compile_seconds).", panel="Devices")
    compile_mode: str = option(
        "default", "torch.compile mode (with --torchcompile, inductor only); reduce-overhead "
        "uses CUDA graphs.",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        panel="Devices")
    compile_backend: str = option(
        "inductor", "torch.compile backend (with --torchcompile): inductor, or another of "
        "torch._dynamo.list_backends() (aot_eager / eager trace without code generation: to "
        "tell a tracing problem from a code-generation one).", panel="Devices")
    timing_warmup: int = option(
        2, "Untimed warm-up steps before the first arm, so one-time costs (thread pools, "
        "allocator, kernel selection) are billed to no arm (0 disables).", min=0, max=10000,
        role="run", panel="Devices")
    log_interval: int = option(25, "Steps between progress refreshes (one device read each).",
                            min=1, max=1 << 20, role="run", panel="Run & output")
    # --- run directory ---------------------------------------------------------------------
    output: str = option("runs", "Parent folder of run directories.", role="name",
        panel="Run & output")
    experiment: Optional[str] = option(
        None, "Run name (default: <command>-<data>-<model>-<timestamp>).", role="name",
        panel="Run & output")
    baseline: bool = option(
        True, "Run the baseline arm(s) side by side (--no-baseline skips).", role="experiment",
        bench=False, panel="Run & output")
    log_tensorboard: bool = option(
        False, "Log every arm's per-epoch metrics and the summary as TensorBoard event files "
        "under RUN_DIR/tb/<arm>/ (needs `pip install -e \".[tensorboard]\"`).", role="run",
        panel="Logging")
    log_wandb: bool = option(
        False, "Log every arm's per-epoch metrics and the summary to Weights & Biases, files "
        "under RUN_DIR/wandb/ (needs `pip install -e \".[wandb]\"`).", role="run", panel="Logging")
    wandb_project: str = option("mixkit", "W&B project name (with --log-wandb).", role="run",
        panel="Logging")
    wandb_mode: str = option("auto", "W&B mode: auto = offline unless WANDB_API_KEY/WANDB_MODE "
                             "say otherwise (then `wandb sync`), online or offline.",
                             choices=("auto", "online", "offline"), role="run", panel="Logging")
    plots: bool = option(True, "Write the run's figures into RUN_DIR/plots when it finishes "
                      "(--no-plots skips).", role="run", panel="Run & output")
    save_weights: str = option(
        "method", "Which arms' trained classifiers to keep in RUN_DIR/weights/ARM.safetensors: the "
        "method's arm, every arm, or none.", choices=("method", "all", "none"), role="run",
        panel="Run & output")
    keep_checkpoint: bool = option(
        False, "Keep last.pt (optimiser state, RNGs) after the run completes; by default it is "
        "deleted then, as a completed run cannot be resumed.", role="run", panel="Run & output")
    overwrite: bool = option(False, "Replace an existing run directory of the same name.",
                          role="action", panel="Run & output")
    resume: Optional[str] = option(
        None, "Continue the run in this RUN_DIR exactly from its last checkpoint, with its saved "
        "config (only where and how it runs and what it writes may change: --device, "
        "--workers, --log-interval, --data-dir, the loggers, --no-plots, --save-weights, "
        "--keep-checkpoint).", role="action", panel="Run & output")


    # --- the optimiser recipe --------------------------------------------------------------
    @abstractmethod
    def recipes(self) -> list[tuple[str, str, float, str]]:
        """(opt, sched, span in epochs, the flag naming the span) of every recipe the command
        builds: what :meth:`resolve` checks the recipe options against."""

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
                raise UserError(f"{where}: {flag} {short_value(value)} must be two numbers "
                                f"lo,hi with {low} <= hi <= {hi:g}.", hint=f"E.g. {flag} {eg}.")
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
            raise UserError(f"{where}: --decay-milestones {short_value(self.decay_milestones)} "
                            "is not a comma-separated list of epochs.",
                            hint="E.g. 30,60.") from None
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
        out: dict[str, Any] = {"opt": opt, "sched": sched, "decay_rate": self.decay_rate}
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


# the defaults that depend on --opt: AdamW as timm/MAE, SGD as He et al. (2015)
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "sgd": 1e-4}
DEFAULT_LR = {"adamw": 2e-3, "sgd": 0.1}
DEFAULT_LR_BASE = {"adamw": 1e-3, "sgd": 0.1}


