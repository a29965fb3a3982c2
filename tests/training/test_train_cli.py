"""`omnicurate train` takes optimizer steps on CPU and prints a finite loss per step."""

import math
import re

from flows.cli import main


def test_train_command_prints_finite_loss_per_step_and_plots_them(tmp_path, media_bytes, capsys):
    from conftest import make_sample, write_dataset
    from PIL import Image

    from training.metrics import METRICS_FILE, PLOT_FILE, read_metrics

    dataset_dir = write_dataset(tmp_path / "ds", [make_sample(i, turns=1 + i) for i in range(3)], media_bytes, 3)
    code = main(["train", "--shards", str(dataset_dir), "--steps", "3", "--max-tokens", "2048", "--seed", "1",
                 "--checkpoint-dir", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr().out
    losses = [float(m) for m in re.findall(r"^step\s+\d+/3\s+loss ([0-9.eE+-]+)", out, re.M)]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[0] > 5.0  # a random model over a 151k vocabulary starts near ln(151680) = 11.9
    logged = read_metrics(tmp_path / "run" / METRICS_FILE)
    assert [r["step"] for r in logged] == [1, 2, 3]
    assert [round(r["loss"], 4) for r in logged] == losses
    with Image.open(tmp_path / "run" / PLOT_FILE) as plot:
        assert plot.format == "PNG"
    assert f"metrics: {tmp_path / 'run' / METRICS_FILE}" in out


def test_train_command_names_a_bad_config_field(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  sources: [{url: x.tar}]\n  max_tokenz: 10\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "data.max_tokenz" in capsys.readouterr().err
