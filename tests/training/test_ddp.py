"""Multi-process training on CPU (gloo): DDP and FSDP2 through torchrun, and Ray Train, with one config file."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path, media_bytes, parallel, steps=2, ray_workers=0):
    from conftest import make_sample, write_dataset

    dataset_dir = write_dataset(tmp_path / "ds", [make_sample(i, turns=2, with_media=False) for i in range(8)],
                                media_bytes, per_shard=2)
    config = {"stage": "sft", "steps": steps, "seed": 0, "checkpoint_dir": str(tmp_path / "ckpt"),
              "data": {"sources": [{"url": str(dataset_dir)}], "max_tokens": 200, "shuffle_buffer": 0},
              "launch": {"device": "cpu", "parallel": parallel, "ray_workers": ray_workers}, "optim": {"lr": 0.001}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(path, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "flows.cli", "train", "--config", str(path)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def losses(stdout):
    return re.findall(r"^step\s+(\d+)/\d+\s+loss ([0-9.]+)", stdout, re.M)


def test_two_rank_ddp_trains_and_checkpoints_both_ranks_data(media_bytes, tmp_path, tokenizer):
    proc = torchrun(write_config(tmp_path, media_bytes, "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [int(s) for s, _ in losses(proc.stdout)] == [1, 2]  # printed once, by rank 0
    state = json.loads((tmp_path / "ckpt" / "step-00000002" / "loader_state.json").read_text())
    assert state["world_size"] == 2 and sorted(state["slot_epochs"]) == ["0", "1"]
    consumed = [k for ids in state["consumed"].values() for k in ids]
    assert len(consumed) == len(set(consumed)) >= 4  # both ranks' samples, none twice


@pytest.mark.slow
def test_two_rank_fsdp2_trains_saves_and_resumes(media_bytes, tmp_path, tokenizer):
    path = write_config(tmp_path, media_bytes, "fsdp")
    first = torchrun(path)
    assert first.returncode == 0, first.stderr[-3000:]
    path.write_text(path.read_text().replace("steps: 2", "steps: 3"))
    resumed = torchrun(path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [int(s) for s, _ in losses(resumed.stdout)] == [3]
    assert (tmp_path / "ckpt" / "step-00000003" / "COMPLETE").exists()


@pytest.mark.slow
def test_ray_train_runs_the_same_config(media_bytes, tmp_path, tokenizer):
    path = write_config(tmp_path, media_bytes, "ddp", ray_workers=2)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RAY_DEDUP_LOGS="0")
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "train", "--config", str(path), "--launcher", "ray"],
                          capture_output=True, text=True, timeout=500, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = re.findall(r"step\s+(\d+)/\d+\s+loss [0-9.]+", proc.stdout + proc.stderr)
    assert sorted({int(s) for s in steps}) == [1, 2]  # rank 0's lines, forwarded by Ray (maybe more than once)
