"""Review rendering: text dialogue, the HTML page opened in headless Chromium, and the plotted report."""

import base64
import dataclasses
import io
import re
import subprocess

import pytest
from PIL import Image
from shard_fixtures import QUARANTINE, make_media, make_samples, small_shards

from pipelines.dataset.catalog import query
from pipelines.dataset.writer import write_dataset
from pipelines.dataset.review_render import load_sample_view, render_report, render_sample_html, render_sample_text


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    media = make_media(root / "media")
    write_dataset(root / "ds", make_samples(6, media, rejected_every=4), QUARANTINE, shard=small_shards())
    return root / "ds"


def dump_dom(page, tmp_path) -> str:
    """The DOM of ``page`` after its scripts ran, from Debian's headless Chromium (no network, fresh profile)."""
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def media_status(dom: str) -> dict[str, str]:
    """{member: data-load} of every media element in the dumped DOM."""
    status = {}
    for tag in re.findall(r"<(?:img|video|audio)\b[^>]*>", dom):
        member = re.search(r'data-member="([^"]+)"', tag).group(1)
        load = re.search(r'data-load="([a-z]+)"', tag)
        status[member] = load.group(1) if load else "pending"
    return status


def test_text_view_lists_turns_types_memory_and_lineage(dataset):
    text = render_sample_text(load_sample_view(dataset, "s00002"))
    assert [line.split()[1] for line in text.splitlines() if line.startswith("turn ")] == ["0", "1", "2", "3", "4"]
    assert "turn 3 [memory_media]  recalls turn 0 (3 back: m00.jpg)" in text
    assert 'turn 4 [memory_text]  recalls turn 2 (2 back: "What is two plus two?")' in text
    assert "[video m01.mp4] What does the clip show? [spoken t01.user.flac]" in text
    assert "token_budget passed" in text and "source: /corpus/clip.mp4" in text


def test_rejected_or_unknown_keys_are_explained(dataset):
    with pytest.raises(KeyError, match="rejected by token_budget"):
        load_sample_view(dataset, "s00003")
    with pytest.raises(KeyError, match="no sample"):
        load_sample_view(dataset, "nope")


def test_html_page_loads_every_turn_and_media_in_chromium(dataset, tmp_path):
    page = tmp_path / "s00002.html"
    page.write_text(render_sample_html(load_sample_view(dataset, "s00002")))
    dom = dump_dom(page, tmp_path)
    turns = re.findall(r'<section class="turn (\w+)" id="turn-(\d)" data-turn="\d" data-question-type="(\w+)"', dom)
    assert turns == [("plain", "0", "current_media"), ("plain", "1", "current_media"), ("plain", "2", "no_context"),
                     ("memory", "3", "memory_media"), ("memory", "4", "memory_text")]
    assert re.findall(r'class="memory-link" href="#turn-(\d)"', dom) == ["0", "2"]
    assert len(re.findall(r"<img\b", dom)) == 1 and len(re.findall(r"<video\b", dom)) == 1
    assert len(re.findall(r"<audio\b", dom)) == 2
    assert media_status(dom) == {"m00.jpg": "ok", "m01.mp4": "ok", "t01.user.flac": "ok", "m02.flac": "ok"}
    assert "http://" not in dom and "https://" not in dom  # self-contained
    assert 'id="verdicts"' in dom and "token_budget" in dom and "/corpus/still.jpg" in dom


def test_broken_members_show_as_failed_in_chromium(dataset, tmp_path):
    view = load_sample_view(dataset, "s00001")
    broken = dataclasses.replace(view, members={**view.members, "m00.jpg": b"not a jpeg", "m01.mp4": b"\0" * 64})
    page = tmp_path / "broken.html"
    page.write_text(render_sample_html(broken))
    status = media_status(dump_dom(page, tmp_path))
    assert status["m00.jpg"] == "error" and status["m01.mp4"] == "error"
    assert status["m02.flac"] == "ok"


def test_report_has_six_plots_and_the_catalog_numbers(dataset):
    html = render_report(dataset)
    sections = re.findall(r'<section class="plot" id="(\w+)"><h2>[^<]*</h2><img alt="\w+" src="data:image/png;base64,'
                          r'([^"]+)"', html)
    assert [name for name, _ in sections] == ["turns_per_dialogue", "question_types", "memory_distances",
                                              "media_durations", "quarantine_reasons", "filter_pass_rates"]
    for _, png in sections:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        assert image.format == "PNG" and image.width > 200
    mix = query(dataset, "SELECT question_type, count(*) AS n FROM turns JOIN samples USING (key) WHERE kept "
                         "GROUP BY 1").to_pylist()
    section = html.split('id="question_types"')[1].split("</section>")[0]
    for row in mix:
        assert f"<td>{row['question_type']}</td><td>{row['n']}</td>" in section
    quarantine = html.split('id="quarantine_reasons"')[1].split("</section>")[0]
    assert "<td>truncated</td><td>1</td>" in quarantine
    rates = html.split('id="filter_pass_rates"')[1].split("</section>")[0]
    assert "<td>token_budget</td><td>6</td><td>0.833</td>" in rates
