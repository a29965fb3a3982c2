"""Eval sets per partition: each partition's share of the grid, and the sets committed as datasets of their own."""

import json
from collections import Counter
from dataclasses import replace

from dialogue_fixtures import annotated_clip
from shard_fixtures import make_media

from curators.evalset import cell_targets, split_pool
from pipelines.curate_run import SplitPools, eval_shares
from pipelines.dataset.validate import validate_dataset
from pipelines.eval_stage import EvalShare, commit_eval_sets, read_eval_set, run_eval_sets, write_eval_partition
from schemas.config import CurateConfig, EvalConfig, MemorySetConfig, SpeechConfig, SpeechSetConfig


def config(tmp_path, memory=26, speech=0):
    return CurateConfig(input="in", output=str(tmp_path / "ds"), speech=SpeechConfig(enabled=False),
                        eval=EvalConfig(share=0.5, memory=MemorySetConfig(dialogues=memory),
                                        speech=SpeechSetConfig(dialogues=speech)))


def test_partitions_share_each_cell_and_the_totals_are_the_grid(tmp_path):
    cfg = config(tmp_path, memory=61, speech=7)
    pools = [SplitPools(partition=0, train=40, held_out=9, held_out_recallable=6),
             SplitPools(partition=1, train=40, held_out=20, held_out_recallable=14),
             SplitPools(partition=2, train=40, held_out=0, held_out_recallable=0),
             SplitPools(partition=3, train=40, held_out=4, held_out_recallable=1)]
    shares = eval_shares(cfg, pools)
    total: Counter = Counter()
    for share in shares.values():
        total.update(share.memory)
    assert dict(total) == {c: n for c, n in cell_targets(cfg.eval.memory).items() if n}
    assert shares[2] == EvalShare()  # no held-out clips, nothing to plan
    # partition 3 holds one recallable clip: no cell that shows two of them
    assert not any(cell.startswith("media/") and not cell.endswith("x1") for cell in shares[3].memory)
    assert sum(s.speech for s in shares.values()) == 7
    assert shares[1].speech > shares[0].speech > shares[3].speech


def test_a_partitions_eval_sets_commit_as_datasets_with_question_and_key_files(tmp_path):
    media = make_media(tmp_path / "media")
    clips = [replace(annotated_clip(i, kind, media_path=media[kind]), source_sha256=f"{i:064x}")
             for i, kind in enumerate(("video", "image", "audio") * 12)]
    cfg = config(tmp_path)
    train, held = split_pool(clips, cfg.eval.share)
    assert train and len(held) >= 10
    wanted = cell_targets(cfg.eval.memory)
    fragments = []
    for partition, half in enumerate((held[::2], held[1::2])):
        share = EvalShare(memory={c: 1 for i, c in enumerate(sorted(wanted)) if i % 2 == partition})
        sets = run_eval_sets(half, cfg, None, None, share, tmp_path / "scratch")
        assert sorted(sets) == ["memory"]
        fragments.append(write_eval_partition(cfg, partition, "memory", sets["memory"], half))
    where = commit_eval_sets(cfg, {"memory": fragments})
    assert where == {"memory": "eval/memory"}
    folder = tmp_path / "ds" / "eval" / "memory"
    assert validate_dataset(folder) == []
    questions, keys = read_eval_set(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["wanted"] == 26 and counts["items"] == len(keys) == counts["samples"]
    assert 24 <= len(keys) <= 26 and [q.id for q in questions] == [k.id for k in keys] == sorted(k.id for k in keys)
    held_sources = {c.source_sha256 for c in held}
    assert all(set(k.sources) <= held_sources for k in keys)
    # a second commit with one partition gone drops its items and shards
    commit_eval_sets(cfg, {"memory": fragments[:1]})
    assert len(read_eval_set(folder)[1]) == fragments[0].counts["samples"] and validate_dataset(folder) == []
    # a set an earlier run made and this one does not is removed; with eval off, the whole eval folder
    import shutil

    shutil.copytree(folder, tmp_path / "ds" / "eval" / "speech")
    assert commit_eval_sets(cfg, {"memory": fragments[:1]}) == {"memory": "eval/memory"}
    assert sorted(p.name for p in (tmp_path / "ds" / "eval").iterdir()) == ["memory"]
    assert commit_eval_sets(replace(cfg, eval=EvalConfig()), {}) == {}
    assert not (tmp_path / "ds" / "eval").exists()
    assert (tmp_path / "ds").is_dir()
