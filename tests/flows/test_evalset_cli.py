"""``omnicurate evalset export/score`` over a real sharded dataset."""

import json
from dataclasses import replace

from dialogue_fixtures import annotated_clip
from shard_fixtures import make_media

from curators.dialogue_plan import plan_dialogues
from curators.dialogue_write import TemplateDialogueWriter
from curators.sample_build import build_sample
from flows.cli import main
from pipelines.dataset.writer import write_dataset
from schemas.config import CurateConfig, DialogueConfig
from schemas.dialogue import CuratedSample, Message


def curated_dataset(tmp_path):
    media = make_media(tmp_path / "media")
    clips = [replace(annotated_clip(i, kind, media_path=media[kind], media_id=f"src{i // 2}"),
                     source_sha256=f"{i // 2:064x}")
             for i, kind in enumerate(("video", "image", "audio") * 8)]
    by_id = {c.clip.clip_id: c for c in clips}
    cfg = CurateConfig(input="in", output=str(tmp_path / "ds"), dialogue=DialogueConfig(dialogues=16, max_turns=8))
    writer = TemplateDialogueWriter()
    samples = []
    for n, plan in enumerate(plan_dialogues(clips, cfg.dialogue, 0)):
        c = build_sample(writer.write(plan, by_id), by_id, seed=0, config_hash="h", decode=cfg.decode,
                         accounting=cfg.tokens)
        if n % 2:  # half of them spoken, as the speech stage would leave them
            turns = [replace(t, user=Message(role="user", parts=t.user.parts, speech_member=f"t{t.index:02d}.user.flac"))
                     for t in c.sample.dialogue.turns]
            files = {**c.files, **{f"t{t.index:02d}.user.flac": media["speech"] for t in turns}}
            c = CuratedSample(sample=replace(c.sample, dialogue=replace(c.sample.dialogue, turns=turns)), files=files)
        samples.append(c)
    write_dataset(cfg.output, samples, [], seed=0)
    return cfg.output, samples


def test_export_then_score(tmp_path, capsys):
    dataset, samples = curated_dataset(tmp_path)
    out = tmp_path / "eval"
    assert main(["evalset", "export", "--dataset", dataset, "--out", str(out), "--fraction", "0.5", "--seed", "3"]) == 0
    summary = json.loads((out / "evalset.json").read_text())
    mmmb = [json.loads(line) for line in (out / "mmmb.jsonl").read_text().splitlines()]
    msib = [json.loads(line) for line in (out / "msib.jsonl").read_text().splitlines()]
    train = (out / "train_keys.txt").read_text().split()
    assert summary["mmmb"] == len(mmmb) > 0 and summary["msib"] == len(msib)
    by_key = {s.sample.key: s.sample for s in samples}
    train_uris = {src.sha256 for k in train for src in by_key[k].lineage.sources}
    assert not train_uris & {s for item in mmmb + msib for s in item["sources"]}
    capsys.readouterr()

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": item["eval_id"], "answer": item["reference"]}) + "\n"
                               for item in mmmb[:1]))
    assert main(["evalset", "score", "--evalset", str(out), "--answers", str(answers)]) == 0
    printed = capsys.readouterr().out
    overall = next(line for line in printed.splitlines() if line.startswith("mmmb all"))
    assert overall.split()[2:4] == ["1", str(len(mmmb))]
    assert "mmmb type=" in printed and "mmmb distance=" in printed
    answers.write_text("not json\n")
    assert main(["evalset", "score", "--evalset", str(out), "--answers", str(answers)]) == 2
