"""The two training commands as lists of arms on the shared cores.

Until the methods land, each command runs its supervised baseline arm only (``baseline`` for
mixtrain, ``sl`` for mixtraining); a method plugs in here by adding its arm factory.
"""

from __future__ import annotations

from typing import Any

from mixkit.methods.supervised import SupervisedArm
from mixkit.runner import ArmFactory, CommandSpec, RunContext


def supervised(name: str) -> ArmFactory:
    def factory(ctx: RunContext) -> SupervisedArm:
        return SupervisedArm(name, ctx.cfg.epochs, len(ctx.data.train), ctx.recipe(),
                             ctx.plan_generator())
    return factory


def _mixtrain_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    return [("baseline", supervised("baseline"))] if cfg.baseline else []


def _mixtraining_arms(cfg: Any) -> list[tuple[str, ArmFactory]]:
    return [("sl", supervised("sl"))] if cfg.baseline else []


MIXTRAIN = CommandSpec("mixtrain", _mixtrain_arms, method_arm="mixtrain",
                       baseline_arm="baseline")
MIXTRAINING = CommandSpec("mixtraining", _mixtraining_arms, method_arm="mixtraining",
                          baseline_arm="ssl+sl")
