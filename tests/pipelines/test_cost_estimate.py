"""``curate --dry-run``: the cost estimate from probed media, the Qwen token counts and the token accounting,
with no model asked and nothing written."""

from pathlib import Path

import yaml
from media_fixtures import card_image, counter_video, tone

from curators.writers.media_writer import SYSTEM_PROMPT
from flows.cli import main
from openai_server import RecordingProxy
from pipelines.cost_estimate import estimate_usage, probe_corpus
from schemas.config import load_config
from schemas.text_tokens import count_text_tokens
from schemas.tiling import tile_count


def corpus(folder: Path) -> Path:
    folder.mkdir()
    card_image(folder / "a.png", size=(200, 150))
    card_image(folder / "b.png", size=(1200, 900))
    counter_video(folder / "c.mp4", seconds=2.0)  # one 10-second window: one clip
    tone(folder / "d.wav", seconds=1.5)
    (folder / "notes.mp4").write_text("not a video")  # refused by the probe, as the run would
    return folder


def test_dry_run_estimates_from_the_media_and_writes_nothing(tmp_path, capsys):
    source = corpus(tmp_path / "corpus")
    with RecordingProxy("http://127.0.0.1:9/v1") as proxy:  # a server the dry run must never call
        config = tmp_path / "vlm.yaml"
        config.write_text(yaml.safe_dump({
            "input": str(source), "output": str(tmp_path / "dataset"),
            "dialogue": {"writer": "vlm_endpoint", "writer_model": "Qwen/Qwen2.5-VL-7B-Instruct",
                         "endpoint_url": proxy.base_url, "min_turns": 6, "max_turns": 6, "writer_frames": 4},
            "memory_check": {"answerer": "endpoint", "model": "Qwen/Qwen2.5-VL-7B-Instruct", "url": proxy.base_url}}))
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert main(["curate", "--config", str(config), "--dry-run"]) == 0
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = capsys.readouterr().out
    assert proxy.requests == [] and after == before  # no model asked, nothing written (no dataset, no work dir)

    cfg = load_config(config)
    shape = probe_corpus(cfg)
    assert (shape.sources, shape.refused, shape.clips) == (5, 1, {"image": 2, "video": 1, "audio": 1})
    tiles = [tile_count(200, 150), tile_count(1200, 900)]
    assert shape.picture_tokens["image"] == sum(cfg.tokens.image_tokens(t) for t in tiles) / 2
    assert shape.picture_tokens["video"] == cfg.tokens.video_tokens(4)
    rows, figures = estimate_usage(cfg, shape)
    assert figures["dialogues"] == 1 and figures["turns"] == 6  # round(4 clips / 3) dialogues of 6 turns
    writer, answerer = rows
    assert (writer.stage, writer.requests) == ("writer", 6)
    assert writer.prompt_tokens > 6 * (count_text_tokens(SYSTEM_PROMPT) + shape.picture_tokens["image"] / 4)
    assert answerer.stage == "answerer" and 0 < answerer.requests < 4 * 6
    assert f"writer       Qwen/Qwen2.5-VL-7B-Instruct: 6 requests, {writer.prompt_tokens} prompt" in out
    assert "answerer" in out and "clips 4" in out


def test_the_template_writer_costs_nothing(tmp_path):
    cfg = load_config_for(tmp_path)
    rows, figures = estimate_usage(cfg, probe_corpus(cfg))
    assert rows == [] and figures["clips"] == 4


def load_config_for(tmp_path):
    from schemas.config import CurateConfig

    return CurateConfig(input=str(corpus(tmp_path / "corpus")), output=str(tmp_path / "dataset"))
