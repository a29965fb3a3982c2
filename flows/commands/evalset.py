"""``omnicurate evalset``: export MMMB- and MSIB-style splits disjoint in source media, and score a model's answers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flows.commands import command_help

EVALSET_FILE = "evalset.json"
SPLIT_FILES = {"mmmb": "mmmb.jsonl", "msib": "msib.jsonl"}
TRAIN_KEYS_FILE = "train_keys.txt"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evalset", help="export memory and speech evaluation sets from a dataset; score a model's answers",
        **command_help("Export MMMB-style (memory) and MSIB-style (spoken) evaluation sets whose source media\n"
                       "never appear in training, and score a model's answers to them.",
                       "omnicurate evalset export --dataset /data/omni-v1 --out /data/omni-eval",
                       "omnicurate evalset score --evalset /data/omni-eval --answers answers.jsonl"))
    sub = p.add_subparsers(dest="evalset_command", required=True, metavar="ACTION")
    export = sub.add_parser(
        "export", help="write mmmb.jsonl and msib.jsonl from a dataset's stored samples",
        **command_help("Write a dataset's dialogues as evaluation items whose source media are held out from\n"
                       "training: mmmb.jsonl (the final memory question, its type, distance and items recalled)\n"
                       "and msib.jsonl (spoken, 2-10 turns). Without --train a seeded --fraction of the sources is\n"
                       "held out and train_keys.txt lists the samples left to train on; with --train, only\n"
                       "sources that training dataset never uses become items.",
                       "omnicurate evalset export --dataset /data/omni-v1 --out /data/omni-eval --fraction 0.2",
                       "omnicurate evalset export --dataset /data/omni-eval-src --train /data/omni-v1 --out eval/"))
    export.add_argument("--dataset", required=True, help="dataset whose samples become evaluation items")
    export.add_argument("--out", required=True, help="directory for the evaluation set")
    export.add_argument("--train", help="a separate training dataset: items never share its source media")
    export.add_argument("--fraction", type=float, default=0.2,
                        help="share of source media held out for evaluation when --train is not given")
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(run=run_export)
    score = sub.add_parser(
        "score", help="print accuracy by question type and turn distance of a JSONL of answers",
        **command_help("Score a model's answers (one {\"id\": ..., \"answer\": ...} per line) against an exported\n"
                       "evaluation set: accuracy and a 1-5 content score by question type, turn distance and\n"
                       "items recalled.",
                       "omnicurate evalset score --evalset /data/omni-eval --answers answers.jsonl"))
    score.add_argument("--evalset", required=True, help="directory written by `evalset export`")
    score.add_argument("--answers", required=True, help='JSONL, one {"id": ..., "answer": ...} per line')
    score.set_defaults(run=run_score)


def _stored_samples(dataset: str):
    from pipelines.dataset.shard_index import SampleReader
    from schemas import from_json
    from schemas.dataset_format import SAMPLE_JSON, SHARDS_DIR, member_name
    from schemas.dialogue import Sample

    reader = SampleReader(dataset)
    samples = []
    for key in sorted(reader.keys_in_order()):
        wanted = member_name(key, SAMPLE_JSON)
        for member, offset, size in reader.members(key):
            if member == wanted:
                data = reader.location.read_range((SHARDS_DIR, reader.shard_of(key)), offset, size)
                samples.append(from_json(Sample, data))
    return samples


def run_export(args: argparse.Namespace) -> int:
    from curators.evalset import sample_sources, split_for_eval
    from schemas import to_dict

    if not 0 < args.fraction < 1:
        print("omnicurate evalset: --fraction must be between 0 and 1", file=sys.stderr)
        return 2
    samples = _stored_samples(args.dataset)
    train_sources = None
    if args.train:
        train_sources = set().union(*(sample_sources(s) for s in _stored_samples(args.train)))
    splits = split_for_eval(samples, fraction=args.fraction, seed=args.seed, train_sources=train_sources)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, items in (("mmmb", splits.mmmb), ("msib", splits.msib)):
        with open(out / SPLIT_FILES[name], "w") as f:
            f.writelines(json.dumps(to_dict(item), sort_keys=True) + "\n" for item in items)
    if train_sources is None:
        (out / TRAIN_KEYS_FILE).write_text("".join(f"{k}\n" for k in splits.train_keys))
    summary = {"dataset": args.dataset, "train": args.train, "seed": args.seed, "fraction": args.fraction,
               "mmmb": len(splits.mmmb), "msib": len(splits.msib), "train_samples": len(splits.train_keys),
               "dropped_mixed_sources": splits.dropped, "eval_sources": splits.eval_sources}
    (out / EVALSET_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"{out}: {len(splits.mmmb)} MMMB-style and {len(splits.msib)} MSIB-style items from "
          f"{len(splits.eval_sources)} held-out sources; {splits.dropped} samples dropped for mixing sources")
    if train_sources is None:
        print(f"training split without those sources: {len(splits.train_keys)} samples listed in {TRAIN_KEYS_FILE}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from curators.evalset import EvalItem, score_answers
    from schemas import from_dict

    folder = Path(args.evalset)
    items = []
    for name in SPLIT_FILES.values():
        path = folder / name
        if path.exists():
            items.extend(from_dict(EvalItem, json.loads(line)) for line in path.read_text().splitlines() if line)
    answers: dict[str, str] = {}
    for n, line in enumerate(Path(args.answers).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answers[str(row["id"])] = str(row["answer"])
        except (json.JSONDecodeError, KeyError, TypeError):
            print(f"omnicurate evalset: {args.answers}:{n}: expected {{\"id\": ..., \"answer\": ...}}", file=sys.stderr)
            return 2
    unknown = set(answers) - {i.eval_id for i in items}
    rows = score_answers(items, answers)
    width = max((len(r.group) for r in rows), default=5)
    print(f"{'group':<{width}}  correct  total  accuracy  content(1-5)")
    for r in rows:
        print(f"{r.group:<{width}}  {r.correct:>7}  {r.total:>5}  {r.accuracy:>8.3f}  {r.mean_content:>12.2f}")
    if unknown:
        print(f"{len(unknown)} answers name no item of this evaluation set", file=sys.stderr)
    return 0
