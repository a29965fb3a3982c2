"""`omnicurate train merge` writes the weighted mean of trained checkpoints; bad input is a named error, exit 2."""

import pytest
import torch
from torch.distributed.checkpoint.state_dict import get_model_state_dict

from flows.cli import main
from training.checkpoint import load_model_weights
from training.config import load_train_config
from training.trainer import build_model

CONFIG = """\
stage: {stage}
seed: 0
data:
  sources: [{{url: {url}}}]
  max_tokens: 1024
  shuffle_buffer: 0
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, media_bytes):
    """Two one-step trainings from different seeds: (config path, run a's checkpoint_dir, run b's checkpoint_dir)."""
    from conftest import make_sample, write_dataset

    root = tmp_path_factory.mktemp("merge")
    data = write_dataset(root / "ds", [make_sample(i, turns=2, with_media=False) for i in range(2)], media_bytes, 2)
    config = root / "sft.yaml"
    config.write_text(CONFIG.format(stage="sft", url=data))
    for run, seed in (("a", "1"), ("b", "2")):
        assert main(["train", "--config", str(config), "--steps", "1", "--seed", seed,
                     "--checkpoint-dir", str(root / run)]) == 0
    return config, root / "a", root / "b"


def weights_of(config_path, tokenizer, checkpoint):
    model, _ = build_model(load_train_config(config_path), tokenizer, torch.device("cpu"))
    load_model_weights(model, checkpoint)
    return get_model_state_dict(model)


def test_merge_is_the_weighted_mean_of_every_tensor(trained, tokenizer, tmp_path, capsys):
    config, a, b = trained
    out = tmp_path / "merged"
    code = main(["train", "merge", "--config", str(config), "--checkpoint", str(a),
                 "--checkpoint", str(b / "step-00000001"), "--weight", "3", "--weight", "1", "--out", str(out)])
    assert code == 0
    assert f"merged: {out}" in capsys.readouterr().out
    first, second = weights_of(config, tokenizer, a / "step-00000001"), weights_of(config, tokenizer, b)
    merged = weights_of(config, tokenizer, out)
    floats = [name for name, t in merged.items() if t.is_floating_point()]
    differing = [name for name in floats if not torch.equal(first[name], second[name])]
    assert len(differing) > len(floats) // 2  # different seeds: the runs share (almost) no weights
    for name in floats:
        assert torch.allclose(merged[name], 0.75 * first[name] + 0.25 * second[name], atol=1e-6), name


def test_merged_checkpoint_starts_a_later_stage(trained, tmp_path):
    config, a, b = trained
    out = tmp_path / "merged"
    assert main(["train", "merge", "--config", str(config), "--checkpoint", str(a), "--checkpoint", str(b),
                 "--out", str(out)]) == 0
    next_stage = tmp_path / "next.yaml"
    next_stage.write_text(config.read_text() + f"init_from: {out}\n")
    assert main(["train", "--config", str(next_stage), "--steps", "1"]) == 0


@pytest.mark.parametrize("case, expected", [
    ("one_weight", "1 weights for 2 checkpoints"),
    ("negative_weight", "every weight must be a positive number"),
    ("missing_checkpoint", "nowhere is neither a complete checkpoint"),
    ("occupied_out", "already exists"),
    ("other_architecture", "is not a checkpoint of the configured model"),
])
def test_bad_merge_input_is_named_with_exit_code_2(trained, tmp_path, capsys, case, expected):
    config, a, b = trained
    checkpoints = [str(a), str(tmp_path / "nowhere") if case == "missing_checkpoint" else str(b)]
    weights = {"one_weight": ["1"], "negative_weight": ["1", "-1"]}.get(case, [])
    out = a if case == "occupied_out" else tmp_path / "merged"
    if case == "other_architecture":  # the speech stage's model has a speech decoder the sft checkpoints lack
        config = tmp_path / "speech.yaml"
        config.write_text(trained[0].read_text().replace("stage: sft", "stage: speech"))
    argv = ["train", "merge", "--config", str(config), "--out", str(out)]
    argv += [x for c in checkpoints for x in ("--checkpoint", c)] + [x for w in weights for x in ("--weight", w)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    if case == "other_architecture":
        assert "speech_decoder" in err
    assert not (tmp_path / "merged").exists()


def test_merge_without_a_checkpoint_is_a_usage_error(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "merge", "--config", str(trained[0]), "--out", str(tmp_path / "m")])
    assert stop.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err



MERGE_IN_A_FRESH_PROCESS = """
import json, sys
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict
from training.checkpoint import merge_checkpoints

def status(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))

with torch.device("meta"):
    skeleton = nn.Sequential(*[nn.Linear(512, 512, bias=False) for _ in range(64)])
get_model_state_dict(skeleton)  # its first call imports more of torch.distributed: not the merge's memory
open("/proc/self/clear_refs", "w").write("5")  # the peak RSS counts from here
before = status("VmRSS:")
merge_checkpoints(sys.argv[1:3], [3.0, 1.0], sys.argv[3], skeleton)
print(json.dumps({"rss_before": before, "rss_peak": status("VmHWM:")}))
"""


def test_merge_streams_one_tensor_at_a_time(tmp_path):
    """A 64 MiB model of 64 equal tensors merges in a fresh process whose peak RSS rises by under a quarter of
    the model: holding the model, or float32 accumulators of all its tensors, would raise it by the model's size."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch.distributed.checkpoint as dcp
    from torch import nn

    from training.checkpoint import save_checkpoint
    from training.loader import LoaderState

    sources = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = nn.Sequential(*[nn.Linear(512, 512, bias=False) for _ in range(64)])
        sources.append(model.state_dict())
        save_checkpoint(tmp_path / str(seed), 1, model, torch.optim.SGD(model.parameters(), lr=0.1), LoaderState())
    model_bytes = sum(t.numel() * t.element_size() for t in sources[0].values())
    # glibc's sliding mmap threshold would keep freed 1 MiB blocks in the heap, counted in RSS; a fixed threshold
    # returns them at once, so the peak measures what the merge keeps alive
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1",
           "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, "-c", MERGE_IN_A_FRESH_PROCESS, str(tmp_path / "1"), str(tmp_path / "2"),
                           str(tmp_path / "merged")], check=False, capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    memory = json.loads(proc.stdout.strip().splitlines()[-1])
    assert memory["rss_peak"] - memory["rss_before"] < model_bytes / 4, (memory, model_bytes)
    merged = {name: torch.empty_like(t) for name, t in sources[0].items()}
    dcp.load({"model": merged}, checkpoint_id=str(tmp_path / "merged"))
    for name, tensor in merged.items():
        assert torch.allclose(tensor, 0.75 * sources[0][name] + 0.25 * sources[1][name], atol=1e-7), name


def test_merge_builds_the_full_size_model_without_weights(tmp_path, tokenizer):
    """``train merge`` of full-size checkpoints checks their names and shapes against a model that holds no data."""
    from training.trainer import build_skeleton

    config = tmp_path / "full.yaml"
    config.write_text(CONFIG.format(stage="speech", url=tmp_path) + "model_size: full\n")
    skeleton = build_skeleton(load_train_config(config), tokenizer)
    state = get_model_state_dict(skeleton)
    assert {t.device.type for t in state.values()} == {"meta"}
    assert sum(t.numel() for t in skeleton.parameters()) > 5e9  # Qwen3-4B, InternViT-300M, Whisper-large-v3, speech LM
    assert state["llm.model.embed_tokens.weight"].shape == (151_936, 2560)
