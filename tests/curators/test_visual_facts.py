"""Visual facts: named colours, brightness, motion, scene cuts and OCR on frames the tests draw."""

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from curators.corpus_synth import PALETTE, render_card
import curators.visual_facts as visual_module
from curators.visual_facts import (dominant_colors, mean_brightness, name_colors, read_texts, visual_facts,
                                    visual_facts_many)
from schemas.config import VisualConfig
from schemas.media import Clip


def clip_of(paths: list[Path], kind: str = "video") -> Clip:
    return Clip(clip_id="c0", media_id="m0", source_uri="x", kind=kind, start_s=0.0, end_s=float(len(paths)),
                media_path=str(paths[0]), frame_paths=[str(p) for p in paths],
                frame_times_s=[float(i) for i in range(len(paths))])


def test_palette_colours_are_named_as_the_synth_names_them():
    rgb = np.array([list(v) for v in PALETTE.values()], dtype=np.float32) / 255
    assert list(name_colors(rgb)) == list(PALETTE)


def test_dominant_colours_rank_by_area():
    frame = np.zeros((1, 10, 10, 3), np.float32)
    frame[0, :, :] = np.array(PALETTE["blue"]) / 255
    frame[0, :3, :] = np.array(PALETTE["red"]) / 255
    assert dominant_colors(frame) == [("blue", 0.7), ("red", 0.3)]
    assert mean_brightness(np.ones((1, 2, 2, 3), np.float32)) == 1.0


def test_card_frames_give_colours_motion_cut_and_text(tmp_path: Path):
    paths = []
    for i, offset in enumerate([0.0, 0.6, 0.6]):
        path = tmp_path / f"f{i}.jpg"
        render_card((320, 240), "blue", "square", "yellow", "GARDEN", offset).save(path, quality=95)
        paths.append(path)
    cut = tmp_path / "f3.jpg"
    Image.new("RGB", (320, 240), PALETTE["red"]).save(cut)
    facts = visual_facts(clip_of(paths + [cut]))
    assert facts.dominant_colors[0] == "blue"
    assert "yellow" in facts.dominant_colors
    assert facts.scene_cuts_s == [3.0]
    assert facts.motion > 0.02
    still = visual_facts(clip_of(paths[1:3]), VisualConfig(ocr=False))
    assert still.motion == 0.0 and still.ocr_text == ""


def test_ocr_reads_rendered_words(tmp_path: Path):
    path = tmp_path / "card.png"
    render_card((400, 300), "green", "circle", "purple", "LANTERN").save(path)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), PALETTE["orange"]).save(blank)
    assert read_texts([str(path)]) == ["LANTERN"]
    assert read_texts([str(blank)]) == [""]
    assert read_texts([]) == []


def cards(tmp_path: Path) -> list[Path]:
    words = ["DOLPHIN", "", "KETTLE", "MEADOW", "VIOLIN"]  # a blank card among them
    paths = []
    for i, word in enumerate(words):
        path = tmp_path / f"card{i}.jpg"
        render_card((320, 240), ["blue", "red", "green", "yellow", "purple"][i], "square", "orange", word,
                    0.1 * i).save(path, quality=95)
        paths.append(path)
    return paths


def test_images_read_in_one_tesseract_run_read_as_each_does_alone(tmp_path: Path):
    paths = [str(p) for p in cards(tmp_path)]
    alone = [read_texts([p])[0] for p in paths]
    assert alone[0] == "DOLPHIN" and alone[1] == "" and alone[3] == "MEADOW"
    assert read_texts(paths) == alone
    assert read_texts(paths[::-1]) == alone[::-1]  # a page's words are its own, wherever it sits in the run
    clips = [clip_of([Path(p)], kind="image") for p in paths]
    assert visual_facts_many(clips) == [visual_facts(c) for c in clips]


def test_a_failed_shared_run_reads_each_image_alone(tmp_path: Path, monkeypatch):
    paths = [str(p) for p in cards(tmp_path)]
    expected = read_texts(paths)
    real, runs = visual_module._tesseract_tsv, []

    def list_runs_fail(source, timeout_s):  # tesseract dying on the run that reads a list of frames
        runs.append(source.suffix)
        return None if source.suffix == ".txt" else real(source, timeout_s)

    monkeypatch.setattr(visual_module, "_tesseract_tsv", list_runs_fail)
    assert read_texts(paths) == expected
    assert runs == [".txt"] + [".pgm"] * len(paths)


def test_frames_read_from_bytes_measure_as_the_files_do(tmp_path: Path):
    paths = cards(tmp_path)
    clips = [clip_of([p], kind="image") for p in paths]
    from_disk = visual_facts_many(clips)
    named = [replace(c, media_path=Path(c.media_path).name, frame_paths=[Path(p).name for p in c.frame_paths])
             for c in clips]
    files = [{Path(p).name: Path(p).read_bytes() for p in c.frame_paths} for c in clips]
    for path in paths:
        path.unlink()  # nothing left on the disk to read
    assert visual_facts_many(named, files=files) == from_disk
    assert from_disk[0].ocr_text == "DOLPHIN"
