"""A training run's per-step metrics: one JSON line per step beside its checkpoints, and a plot of them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"


@dataclass(slots=True)
class StepReport:
    step: int
    loss: float
    tokens: int
    """Labelled tokens in the step's batch."""
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def format_step(report: StepReport, steps: int | None = None) -> str:
    of = f"/{steps}" if steps else ""
    return (f"step {report.step:>5}{of}  loss {report.loss:.4f}  tokens {report.tokens}  {report.seconds:.2f}s  "
            f"{report.tokens_per_second:,.0f} tok/s")


class MetricsLog:
    """Appends each step to ``folder/metrics.jsonl``. A run resumed at step N first drops the lines after N: those
    steps are trained again, so the file never holds a step twice."""

    def __init__(self, folder: str | Path, resume_step: int = 0):
        self.path = Path(folder) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(partial, self.path)

    def append(self, report: StepReport) -> None:
        with self.path.open("a") as f:  # a line per step, on disk before the next step starts
            f.write(json.dumps(asdict(report)) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """The steps of a metrics file in order; a line cut short by a crash is left out."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def plot_metrics(path: str | Path, out: str | Path | None = None) -> Path:
    """Loss and labelled tokens per second against step, as a PNG (``metrics.png`` beside the file by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(path)
    out = Path(out) if out is not None else Path(path).with_name(PLOT_FILE)
    steps = [r["step"] for r in rows]
    fig, (loss_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_ax.plot(steps, [r["loss"] for r in rows], color="#4c72b0", marker="." if len(rows) < 50 else None)
    loss_ax.set_title("loss")
    rate_ax.plot(steps, [StepReport(**r).tokens_per_second for r in rows], color="#55a868")
    rate_ax.set_title("labelled tokens per second")
    for ax in (loss_ax, rate_ax):
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=ax.transAxes)
    partial = out.with_name(out.name + ".partial.png")
    fig.savefig(partial, dpi=90, bbox_inches="tight")
    plt.close(fig)
    os.replace(partial, out)
    return out
