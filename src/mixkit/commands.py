"""The two training commands as lists of arms on the shared cores.

``mixtrain`` runs its baseline arm and the mixTrain arm. Until MixTraining lands,
``mixtraining`` runs its supervised ``sl`` baseline only; a method plugs in here by adding its
arm factory.
"""

from __future__ import annotations

from typing import Any

from mixkit.methods.mixtrain.method import MixTrainArm, check_op
from mixkit.methods.supervised import SupervisedArm
from mixkit.runner import ArmFactory, CommandSpec, RunContext


def supervised(name: str) -> ArmFactory:
    def factory(ctx: RunContext) -> SupervisedArm:
        return SupervisedArm(name, ctx.cfg.epochs, len(ctx.data.train), ctx.recipe(),
                             ctx.plan_generator())
    return factory


def mixtrain(ctx: RunContext) -> MixTrainArm:
    return MixTrainArm(ctx.cfg, len(ctx.data.train), ctx.recipe(), ctx.model_info,
                       ctx.data.img_size, ctx.runtime.device)


def _mixtrain_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    base = [("baseline", supervised("baseline"))] if cfg.baseline else []
    return base + [("mixtrain", mixtrain)]


def _mixtraining_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    return [("sl", supervised("sl"))] if cfg.baseline else []


MIXTRAIN = CommandSpec("mixtrain", _mixtrain_arms, method_arm="mixtrain",
                       baseline_arm="baseline",
                       check=lambda ctx: check_op(ctx.cfg.op, ctx.model_info))
MIXTRAINING = CommandSpec("mixtraining", _mixtraining_arms, method_arm="mixtraining",
                          baseline_arm="ssl+sl")
