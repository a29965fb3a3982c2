"""DDP with two CPU processes (gloo) through torchrun and the same `omnicurate train --config` file."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml


def test_two_rank_ddp_trains_and_checkpoints_both_ranks_data(media_bytes, tmp_path, tokenizer):
    from conftest import make_sample, write_dataset

    dataset_dir = write_dataset(tmp_path / "ds", [make_sample(i, turns=2, with_media=False) for i in range(8)],
                                media_bytes, per_shard=2)
    ckpt = tmp_path / "ckpt"
    config = {"stage": "sft", "steps": 2, "seed": 0, "checkpoint_dir": str(ckpt),
              "data": {"sources": [{"url": str(dataset_dir)}], "max_tokens": 200, "shuffle_buffer": 0},
              "launch": {"device": "cpu", "parallel": "ddp"}, "optim": {"lr": 0.001}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "flows.cli", "train", "--config", str(path)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = re.findall(r"^step\s+(\d+)\s+loss ([0-9.]+)", proc.stdout, re.M)
    assert [int(s) for s, _ in losses] == [1, 2]  # printed once, by rank 0
    state = json.loads((ckpt / "step-00000002" / "loader_state.json").read_text())
    assert state["world_size"] == 2 and sorted(state["slot_epochs"]) == ["0", "1"]
    consumed = [k for ids in state["consumed"].values() for k in ids]
    assert len(consumed) == len(set(consumed)) >= 4  # both ranks' samples, none twice
