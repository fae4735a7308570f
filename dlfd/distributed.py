"""Train the original and retrained models with PyTorch DDP, launched by ``torchrun``.

    torchrun --nproc_per_node=4 -m dlfd.distributed --profile full --seed 0 --out runs/full

Each process trains on a shard of every epoch (``DistributedSampler``) with the per-process
batch ``batch_size / world_size``, so the global batch and the recipe are the profile's;
``DistributedDataParallel`` averages the gradients (and ``SyncBatchNorm`` shares BatchNorm
statistics on GPUs). Rank 0 writes the same manifest and checkpoints as
:func:`dlfd.experiment.prepare`, so the notebooks and the benchmark, given the same
``out_dir``, profile and seed, load these models instead of training them. Unlearning itself
is one short epoch and runs in the notebooks on one device.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .checks import require
from .experiment import load_seed, recipe
from .models import build_model
from .profiles import get_profile
from .train import checkpoint_meta, save_checkpoint, seed_everything, train_model


def train_references(profile: str, seed: int, out_dir: str, dataset: str = "orl",
                     dataset_root: str | None = None, split_seed: int | None = None) -> None:
    """Run inside an initialised process group; rank 0 saves the checkpoints.

    ``profile`` is adapted to ``dataset`` by :func:`dlfd.profiles.get_profile`, exactly as
    :func:`dlfd.experiment.prepare` does, so that prepare finds and reuses the checkpoints
    (given the same ``split_seed``: default ``seed``).
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    settings = get_profile(profile, dataset=dataset)
    require(settings.batch_size % world == 0,
            f"batch_size={settings.batch_size} of profile {settings.name!r} is not divisible by "
            f"world_size={world}; the global batch must stay the profile's.")
    _, manifest, split, folder = load_seed(settings, seed, out_dir, dataset, dataset_root,
                                         split_seed=split_seed)
    targets = {"original": split.train_dataset(settings.augment),
               "retrained": split.dataset("retain", settings.augment)}
    existing = [str(folder / f"{n}.pt") for n in targets if (folder / f"{n}.pt").exists()]
    if existing:
        raise FileExistsError(f"{existing} exist; refusing to overwrite. Use another --out.")
    if rank == 0:
        manifest.save(folder / "manifest.csv")
    cfg = recipe(settings, seed)
    for name, dataset_part in targets.items():
        seed_everything(seed)  # every rank starts from the same weights
        model = build_model(settings.arch, split.num_classes).to(device)
        if cuda:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = DDP(model, device_ids=[local] if cuda else None)
        sampler = DistributedSampler(dataset_part, num_replicas=world, rank=rank, shuffle=True,
                                     seed=seed)
        loader = DataLoader(dataset_part, batch_size=settings.batch_size // world, sampler=sampler)
        history = train_model(ddp, loader, cfg, device, progress=rank == 0,
                              desc=f"{name} (seed {seed}, {world} processes)")
        if rank == 0:
            meta = checkpoint_meta(settings.arch, split.num_classes, manifest.hash, cfg,
                                   dict(image_size=settings.image_size, world_size=world), history)
            save_checkpoint(folder / f"{name}.pt", model, meta)
        dist.barrier()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torchrun ... -m dlfd.distributed", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the run folder the notebooks will use")
    parser.add_argument("--dataset", default="orl")
    parser.add_argument("--dataset-root", default=None)
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the split and forget set (default: --seed)")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("launch with torchrun, e.g. torchrun --nproc_per_node=2 -m dlfd.distributed "
                     "...")
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        train_references(args.profile, args.seed, args.out, args.dataset, args.dataset_root,
                         args.split_seed)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
