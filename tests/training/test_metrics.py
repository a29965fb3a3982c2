"""Per-step training metrics: one line per step even across a resume, a torn last line ignored, and a plot."""

import json

from PIL import Image

from training.metrics import METRICS_FILE, MetricsLog, StepReport, format_step, plot_metrics, read_metrics


def report(step: int, loss: float) -> StepReport:
    return StepReport(step=step, loss=loss, tokens=100 * step, seconds=0.5)


def test_a_resumed_run_redoes_the_steps_after_its_checkpoint_without_duplicating_them(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(1, 6):
        log.append(report(step, 10.0 - step))
    log = MetricsLog(tmp_path, resume_step=3)  # the checkpoint was at step 3; steps 4 and 5 run again
    for step in (4, 5, 6):
        log.append(report(step, 1.0 / step))
    rows = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [9.0, 8.0, 7.0, 0.25, 0.2, 1.0 / 6]


def test_a_line_torn_by_a_crash_is_left_out(tmp_path):
    path = tmp_path / METRICS_FILE
    path.write_text(json.dumps({"step": 1, "loss": 2.0, "tokens": 5, "seconds": 1.0}) + '\n{"step": 2, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1]
    MetricsLog(tmp_path, resume_step=2).append(report(2, 1.5))
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_the_plot_is_a_png_of_the_steps(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(1, 8):
        log.append(report(step, 5.0 / step))
    out = plot_metrics(tmp_path / METRICS_FILE)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 400 and img.height > 150
        assert len(img.convert("RGB").getcolors(1 << 16)) > 10  # lines and text drawn, not a blank canvas
    assert not list(tmp_path.glob("*.partial*"))


def test_a_step_line_says_its_rate_and_how_far_along():
    line = format_step(StepReport(step=3, loss=1.23456, tokens=2000, seconds=0.5), steps=10)
    assert line.split()[:4] == ["step", "3/10", "loss", "1.2346"] and "4,000 tok/s" in line
