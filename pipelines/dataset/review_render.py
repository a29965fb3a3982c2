"""Render datasets for reviewers: one sample as text or a self-contained HTML page, and a plotted HTML report."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

from pipelines.dataset.catalog import query
from pipelines.dataset.location import DatasetLocation, as_location
from pipelines.dataset.manifest import read_manifest
from pipelines.dataset.shard_index import SampleReader
from schemas import from_json
from schemas.dataset_format import SAMPLE_JSON
from schemas.dialogue import MEMORY_TYPES, ContentPart, Message, Sample, Turn
from schemas.usage import USAGE_TABLE

MIME_TYPES = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4", "flac": "audio/flac"}


@dataclass(slots=True, frozen=True)
class SampleView:
    """One stored sample: its record and the bytes of its members."""

    key: str
    shard: str
    sample: Sample
    members: dict[str, bytes]


def load_sample_view(dataset: str | Path | DatasetLocation, key: str) -> SampleView:
    """Find ``key`` through the catalog and read it through its shard's index; KeyError when not stored."""
    location = as_location(dataset)
    rows = query(location, "SELECT shard, kept, failed_filters FROM samples WHERE key = ?", [key]).to_pylist()
    if not rows:
        raise KeyError(f"no sample {key!r} in the catalog of {location.url}")
    if not rows[0]["kept"]:
        raise KeyError(f"sample {key!r} was rejected by {', '.join(rows[0]['failed_filters'])}; rejected samples "
                       "are catalogued (turns, verdicts) but not stored in shards")
    shard = rows[0]["shard"]
    members = SampleReader(location, shards=[shard]).read(key)
    return SampleView(key=key, shard=shard, sample=from_json(Sample, members[SAMPLE_JSON]), members=members)


def _memory_line(turn: Turn) -> str:
    refs = []
    for r in turn.memory_refs:
        what = r.member or f'"{r.text}"'
        refs.append(f"turn {r.turn} ({r.distance} back: {what})")
    return "recalls " + "; ".join(refs)


def _message_text(message: Message) -> str:
    parts = [f"[{p.kind} {p.member}]" if p.member else (p.text or "") for p in message.parts]
    if message.speech_member:
        parts.append(f"[spoken {message.speech_member}]")
    return " ".join(parts)


def render_sample_text(view: SampleView) -> str:
    s = view.sample
    lines = [(f"sample {s.key}  shard {view.shard}  dialogue {s.dialogue.dialogue_id}  "
              f"turns {len(s.dialogue.turns)}  media {len(s.dialogue.media)}  tokens {s.tokens.total}")]
    for t in s.dialogue.turns:
        lines.append(f"turn {t.index} [{t.question_type}]" + (f"  {_memory_line(t)}" if t.memory_refs else ""))
        lines.append(f"  user:      {_message_text(t.user)}")
        lines.append(f"  assistant: {_message_text(t.assistant)}")
    verdicts = [f"{v.filter} {'passed' if v.passed else 'FAILED ' + v.code}"
                + (f" ({v.detail})" if v.detail else "") + (f" score={v.score:g}" if v.score is not None else "")
                for v in s.verdicts]
    lines.append("verdicts: " + ("; ".join(verdicts) or "none"))
    lin = s.lineage
    for src in lin.sources:
        lines.append(f"source: {src.uri} [{src.start_s:g}s-{src.end_s:g}s] sha256 {src.sha256[:12]}")
    lines.append(f"operators: {', '.join(f'{k}={v}' for k, v in sorted(lin.operators.items()))}")
    if lin.models:
        lines.append(f"models: {', '.join(f'{k}={v}' for k, v in sorted(lin.models.items()))}")
    lines.append(f"seed {lin.seed}  config {lin.config_hash}")
    return "\n".join(lines)


def _data_uri(suffix: str, data: bytes) -> str:
    ext = suffix.rsplit(".", 1)[-1]
    return f"data:{MIME_TYPES[ext]};base64,{base64.b64encode(data).decode()}"


def _media_html(kind: str, member: str, view: SampleView, css: str = "media") -> str:
    data = view.members.get(member)
    if data is None:
        return f'<p class="missing">missing member {escape(member)}</p>'
    src = _data_uri(member, data)
    label = f"<figcaption>{escape(member)}</figcaption>"
    if kind == "image":
        el = f'<img class="{css}" data-member="{escape(member)}" alt="{escape(member)}" src="{src}">'
    elif kind == "video":
        el = f'<video class="{css}" data-member="{escape(member)}" controls preload="metadata" src="{src}"></video>'
    else:
        el = f'<audio class="{css}" data-member="{escape(member)}" controls preload="metadata" src="{src}"></audio>'
    return f"<figure>{el}{label}</figure>"


def _part_html(part: ContentPart, view: SampleView) -> str:
    if part.kind == "text":
        return f'<p class="text">{escape(part.text or "")}</p>'
    return _media_html(part.kind, part.member or "", view)


def _message_html(message: Message, view: SampleView) -> str:
    body = "".join(_part_html(p, view) for p in message.parts)
    if message.speech_member:
        body += '<div class="speech">spoken: ' + _media_html("audio", message.speech_member, view, "media speech")
        body += "</div>"
    return f'<div class="message {message.role}"><span class="role">{message.role}</span>{body}</div>'


def _turn_html(turn: Turn, view: SampleView) -> str:
    memory = ""
    if turn.memory_refs:
        links = []
        for r in turn.memory_refs:
            what = escape(r.member or f'"{r.text}"')
            links.append(f'<a class="memory-link" href="#turn-{r.turn}" data-target-turn="{r.turn}">&#8617; turn '
                         f'{r.turn}</a> <span class="distance">{r.distance} turn{"s" if r.distance != 1 else ""} '
                         f"back</span>: {what}")
        memory = '<p class="memory">depends on ' + "; ".join(links) + "</p>"
    kind = "memory" if turn.question_type in MEMORY_TYPES else "plain"
    return (f'<section class="turn {kind}" id="turn-{turn.index}" data-turn="{turn.index}" '
            f'data-question-type="{turn.question_type}"><h2>turn {turn.index} '
            f'<span class="qtype">{turn.question_type}</span></h2>{memory}'
            f"{_message_html(turn.user, view)}{_message_html(turn.assistant, view)}</section>")


_PAGE_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
.turn{border:1px solid #ccc;border-radius:8px;padding:.6em 1em;margin:1em 0}
.turn.memory{border-left:6px solid #7a4cc2}
.qtype{font-size:.8em;background:#eee;border-radius:4px;padding:.1em .4em;margin-left:.5em}
.memory{color:#5a2ca0}.memory-link{font-weight:bold}
.message{margin:.4em 0}.role{font-weight:bold;display:inline-block;width:6em}
.message.assistant{background:#f6f8fa;border-radius:6px;padding:.3em .5em}
figure{display:inline-block;margin:.3em}img.media,video.media{max-width:420px;max-height:320px}
figure.failed{outline:3px solid #c00}.missing{color:#c00}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
.failed-verdict{color:#c00}
"""

# Marks each media element data-load="ok" or "error", so a broken member is visible (and testable).
_LOAD_STATUS_JS = """
for (const el of document.querySelectorAll('img.media, video.media, audio.media')) {
  const ok = () => { el.dataset.load = 'ok'; };
  const bad = () => { el.dataset.load = 'error'; el.closest('figure').classList.add('failed'); };
  if (el.tagName === 'IMG') {
    if (el.complete) { el.naturalWidth > 0 ? ok() : bad(); }
    else { el.addEventListener('load', ok); el.addEventListener('error', bad); }
  } else if (el.error) { bad(); }
  else if (el.readyState >= 1) { ok(); }
  else { el.addEventListener('loadedmetadata', ok); el.addEventListener('error', bad); }
}
"""


def render_sample_html(view: SampleView) -> str:
    """A self-contained page: turns in order with embedded media, question types, memory links,
    verdicts and lineage. Nothing is fetched from anywhere."""
    s = view.sample
    verdict_rows = "".join(
        f'<tr class="{"passed" if v.passed else "failed-verdict"}"><td>{escape(v.filter)}</td>'
        f'<td>{"passed" if v.passed else "failed"}</td><td><code>{escape(v.code)}</code></td>'
        f'<td>{escape(v.detail)}</td>'
        f'<td>{"" if v.score is None else f"{v.score:g}"}</td><td>{"" if v.turn is None else v.turn}</td></tr>'
        for v in s.verdicts)
    lin = s.lineage
    source_rows = "".join(f"<tr><td>{escape(src.uri)}</td><td>{src.start_s:g}-{src.end_s:g} s</td>"
                          f"<td><code>{escape(src.sha256[:16])}</code></td></tr>" for src in lin.sources)
    kv = [("seed", str(lin.seed)), ("config hash", lin.config_hash),
          *((f"operator {k}", v) for k, v in sorted(lin.operators.items())),
          *((f"model {k}", v) for k, v in sorted(lin.models.items())),
          *((f"prompt {k}", v) for k, v in sorted(lin.prompt_hashes.items()))]
    lineage_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in kv)
    turns = "".join(_turn_html(t, view) for t in s.dialogue.turns)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sample {escape(s.key)}</title>
<style>{_PAGE_CSS}</style></head><body>
<h1>sample <code>{escape(s.key)}</code></h1>
<p class="summary">shard {escape(view.shard)} &middot; dialogue {escape(s.dialogue.dialogue_id)} &middot;
{len(s.dialogue.turns)} turns &middot; {len(s.dialogue.media)} media &middot; {s.tokens.total} tokens
(text {s.tokens.text}, image {s.tokens.image}, video {s.tokens.video}, audio {s.tokens.audio})</p>
<main id="dialogue">{turns}</main>
<section id="verdicts"><h2>verdicts</h2><table><tr><th>filter</th><th>result</th><th>code</th><th>detail</th>
<th>score</th><th>turn</th></tr>{verdict_rows}</table></section>
<section id="lineage"><h2>lineage</h2><table><tr><th>source</th><th>span</th><th>sha256</th></tr>{source_rows}</table>
<table>{lineage_rows}</table></section>
<script>{_LOAD_STATUS_JS}</script>
</body></html>
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bar(labels: list[str], values: list[float], title: str, ylabel: str, horizontal: bool = False) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    if not labels:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif horizontal:
        ax.barh(labels, values, color="#4c72b0")
        ax.set_xlabel(ylabel)
    else:
        ax.bar(labels, values, color="#4c72b0")
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelrotation=20)
    ax.set_title(title)
    return _png(fig)


def _hist(groups: dict[str, list[float]], title: str, xlabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    values = [v for vs in groups.values() for v in vs]
    if values:
        ax.hist(list(groups.values()), bins=20, label=list(groups), stacked=True)
        if len(groups) > 1:
            ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def report_data(dataset: str | Path | DatasetLocation) -> dict[str, list[dict]]:
    """The numbers behind each plot of the report, straight from the catalog."""
    q = lambda sql: query(dataset, sql).to_pylist()
    return {
        "turns_per_dialogue": q("SELECT num_turns, count(*) AS dialogues FROM samples WHERE kept "
                                "GROUP BY 1 ORDER BY 1"),
        "question_types": q("SELECT t.question_type, count(*) AS turns FROM turns t JOIN samples s USING (key) "
                            "WHERE s.kept GROUP BY 1 ORDER BY 2 DESC, 1"),
        "memory_distances": q("SELECT t.memory_distance, count(*) AS turns FROM turns t JOIN samples s USING (key) "
                              "WHERE s.kept AND t.memory_distance IS NOT NULL GROUP BY 1 ORDER BY 1"),
        "media_durations": q("SELECT m.kind, m.duration_s FROM media m JOIN samples s USING (key) WHERE s.kept "
                             "ORDER BY m.kind, m.duration_s"),
        "quarantine_reasons": q("SELECT reason, count(*) AS files FROM quarantine GROUP BY 1 ORDER BY 2 DESC, 1"),
        "filter_pass_rates": q("SELECT filter, count(*) AS verdicts, avg(passed::INT) AS pass_rate FROM verdicts "
                               "GROUP BY 1 ORDER BY 1"),
        "model_usage": model_usage(dataset),
    }


def model_usage(dataset: str | Path | DatasetLocation) -> list[dict]:
    """Requests, tokens, cache hits and failures per stage and model, with requests and tokens per kept
    dialogue (empty for a dataset whose run asked no model, or one written without a ``usage`` table)."""
    has_usage = query(dataset, "SELECT count(*) AS n FROM duckdb_views() WHERE view_name = ? AND NOT internal",
                      [USAGE_TABLE])
    if not has_usage.to_pylist()[0]["n"]:
        return []
    return query(dataset, f"""
        WITH kept AS (SELECT greatest(count(*), 1) AS n FROM samples WHERE kept)
        SELECT stage, model, sum(requests)::BIGINT AS requests, sum(prompt_tokens)::BIGINT AS prompt_tokens,
               sum(completion_tokens)::BIGINT AS completion_tokens, sum(cache_hits)::BIGINT AS cache_hits,
               sum(failures)::BIGINT AS failures, sum(requests) / any_value(kept.n) AS requests_per_kept_dialogue,
               sum(prompt_tokens + completion_tokens) / any_value(kept.n) AS tokens_per_kept_dialogue
        FROM {USAGE_TABLE}, kept GROUP BY 1, 2 ORDER BY 1, 2""").to_pylist()


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(f'{v:.3g}' if isinstance(v, float) else str(v))}</td>"
                                    for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_report(dataset: str | Path | DatasetLocation, data: dict[str, list[dict]] | None = None) -> str:
    """A self-contained HTML report: summary counts and six plots with the numbers under each (``data``:
    the dataset's report_data, when the caller has it already)."""
    import matplotlib

    matplotlib.use("Agg")
    location = as_location(dataset)
    manifest = read_manifest(location)
    data = report_data(location) if data is None else data
    durations: dict[str, list[float]] = {}
    for r in data["media_durations"]:
        durations.setdefault(r["kind"], []).append(r["duration_s"])
    plots = [
        ("turns_per_dialogue", _bar([str(r["num_turns"]) for r in data["turns_per_dialogue"]],
                                    [r["dialogues"] for r in data["turns_per_dialogue"]],
                                    "Turns per dialogue", "dialogues")),
        ("question_types", _bar([r["question_type"] for r in data["question_types"]],
                                [r["turns"] for r in data["question_types"]], "Question-type mix", "turns")),
        ("memory_distances", _bar([str(r["memory_distance"]) for r in data["memory_distances"]],
                                  [r["turns"] for r in data["memory_distances"]],
                                  "Memory distance (turns back)", "memory questions")),
        ("media_durations", _hist(durations, "Media durations (stills are 0 s)", "seconds")),
        ("quarantine_reasons", _bar([r["reason"] for r in data["quarantine_reasons"]],
                                    [r["files"] for r in data["quarantine_reasons"]], "Quarantine reasons", "files",
                                    horizontal=True)),
        ("filter_pass_rates", _bar([r["filter"] for r in data["filter_pass_rates"]],
                                   [r["pass_rate"] for r in data["filter_pass_rates"]], "Filter pass rates",
                                   "fraction passed")),
    ]
    counts = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in sorted(manifest.counts.items()))
    sections = "".join(
        f'<section class="plot" id="{name}"><h2>{escape(name.replace("_", " "))}</h2>'
        f'<img alt="{escape(name)}" src="{png}">'
        + _table(data[name] if name != "media_durations" else
                 [{"kind": k, "clips": len(v), "mean_s": sum(v) / len(v), "max_s": max(v)}
                  for k, v in sorted(durations.items())])
        + "</section>" for name, png in plots)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omnicurate report: {escape(location.url)}</title>
<style>{_PAGE_CSS} section.plot img{{display:block;max-width:100%}}</style></head><body>
<h1>Dataset report</h1><p><code>{escape(location.url)}</code> &middot; schema v{manifest.schema_version} &middot;
seed {manifest.seed} &middot; config {escape(manifest.config_hash)} &middot; {len(manifest.shards)} shards</p>
<section id="counts"><h2>counts</h2><table>{counts}</table></section>
<section id="model_usage"><h2>model usage</h2>{_table(data.get("model_usage", []))}</section>
{sections}
</body></html>
"""
