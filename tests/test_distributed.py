"""torchrun + DDP (gloo on CPU, 2 processes) trains the reference models that the notebooks
then load instead of retraining."""

import os
import subprocess
import sys

import pytest

from dlfd import experiment
from dlfd.distributed import main


def test_torchrun_trains_references_that_prepare_reuses(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "dlfd.distributed", "--profile", "smoke", "--seed", "0", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = out / "orl_smoke_seed0" / "original.pt"
    assert ckpt.is_file() and (out / "orl_smoke_seed0" / "retrained.pt").is_file()
    mtime = ckpt.stat().st_mtime_ns
    prep = experiment.prepare("smoke", 0, out, device="cpu", progress=False)
    assert prep.original_meta["world_size"] == 2
    assert ckpt.stat().st_mtime_ns == mtime  # loaded, not retrained
    # a second launch refuses to overwrite the checkpoints
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr


def test_distributed_needs_torchrun():
    with pytest.raises(SystemExit):
        main(["--out", "x"])
