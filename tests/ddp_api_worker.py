"""One rank of tests/test_api.py's DDP check: ``cli OUT OP`` runs ``mixkit mixtrain`` under
torchrun; ``loop OUT OP`` runs the plain loop of ``examples/plain_pytorch.py``'s shape with a
DDP-wrapped model and :class:`mixkit.MixTrain` (the process group's rank picks the shard)."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

import mixkit
from test_api import _cli_args, _setup, _train
from mixkit.engine.optim import build_optimizer
from mixkit.commands.mixtrain import mixtrain_recipe
from mixkit.models import create_model


def main() -> None:
    mode, out, op = sys.argv[1:4]
    if mode == "cli":
        from mixkit.cli import main as cli

        cli([*_cli_args(op, []), "--output", out, "--experiment", "cli"])
        return
    dist.init_process_group("gloo")
    cfg, items = _setup()
    torch.manual_seed(cfg.seed)
    model, _ = create_model(cfg.model, 10, cfg.img_size)
    recipe = mixtrain_recipe(cfg)
    ddp = DDP(model)
    opt = build_optimizer(model, recipe)
    mt = mixkit.MixTrain(len(items), op=op, seed=cfg.seed, epochs=cfg.epochs)
    loader = DataLoader(items, batch_sampler=mt.batch_sampler(cfg.batch_size),
                        collate_fn=mt.collate)
    state = _train(mt, ddp, opt, recipe, loader, cfg.epochs)["model"]
    if dist.get_rank() == 0:
        torch.save({k.removeprefix("module."): v for k, v in state.items()}, f"{out}/loop.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
