"""The eval sets' score report: a table on stdout and a self-contained HTML page with a plot per axis."""

from __future__ import annotations

import base64
import io
from html import escape

from curators.evalset import ScoreRow

AXIS_TITLES = {"memory_type": "Accuracy by memory type", "distance": "Accuracy by turn distance",
               "items": "Accuracy by items recalled", "cell": "Accuracy by cell of the grid"}


def score_lines(rows: list[ScoreRow]) -> list[str]:
    """The table as text: one line per set and group, accuracy and the mean 1-5 content score."""
    width = max((len(f"{r.axis}={r.value}") for r in rows), default=5)
    lines = [f"{'set':<7} {'group':<{width}}  correct  total  accuracy  content(1-5)"]
    for r in rows:
        group = "all" if r.axis == "all" else f"{r.axis}={r.value}"
        lines.append(f"{r.set:<7} {group:<{width}}  {r.correct:>7}  {r.total:>5}  {r.accuracy:>8.3f}  "
                     f"{r.mean_content:>12.2f}")
    return lines


def _plot(rows: list[ScoreRow], title: str, value: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.0 if len(rows) < 10 else 5.0))
    labels = [r.value for r in rows]
    values = [r.accuracy if value == "accuracy" else r.mean_content for r in rows]
    if len(rows) < 10:
        ax.bar(labels, values, color="#4c72b0")
        ax.set_ylabel(value)
        ax.set_ylim(0, 1.05 if value == "accuracy" else 5.2)
    else:
        ax.barh(labels, values, color="#4c72b0")
        ax.set_xlabel(value)
        ax.set_xlim(0, 1.05)
        ax.invert_yaxis()
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render_score_report(rows: list[ScoreRow], title: str) -> str:
    """Per set: the overall figures, a plot per axis (accuracy; the speech set's mean content score too) and
    the numbers under each."""
    sections = []
    for set_name in sorted({r.set for r in rows}):
        mine = [r for r in rows if r.set == set_name]
        overall = next(r for r in mine if r.axis == "all")
        parts = [f"<h2>{escape(set_name)} set</h2><p>{overall.total} items &middot; accuracy {overall.accuracy:.3f}"
                 f" &middot; content score {overall.mean_content:.2f} / 5</p>"]
        plots = [(axis, [r for r in mine if r.axis == axis], "accuracy") for axis in AXIS_TITLES]
        if set_name == "speech":
            plots.append(("memory_type", [r for r in mine if r.axis in ("all", "memory_type")], "content"))
        for axis, group, value in plots:
            if not group:
                continue
            heading = AXIS_TITLES[axis] if value == "accuracy" else "Content score (1-5), all and by memory type"
            table = "".join(f"<tr><td>{escape(r.value)}</td><td>{r.correct}</td><td>{r.total}</td>"
                            f"<td>{r.accuracy:.3f}</td><td>{r.mean_content:.2f}</td></tr>" for r in group)
            parts.append(f'<section class="plot" id="{escape(set_name)}-{axis}-{value}"><h3>{escape(heading)}</h3>'
                         f'<img alt="{escape(heading)}" src="{_plot(group, heading, value)}">'
                         f"<table><tr><th>{escape(axis)}</th><th>correct</th><th>total</th><th>accuracy</th>"
                         f"<th>content</th></tr>{table}</table></section>")
        sections.append("".join(parts))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px}} img{{display:block;max-width:100%}}</style></head><body>
<h1>{escape(title)}</h1>
{''.join(sections)}
</body></html>
"""
