"""``omnicurate evalset``: list a dataset's eval sets (planned from held-out media by ``curate``) and score a
model's answers to them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flows.commands import command_help


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evalset", help="list the memory and speech eval sets a curation made; score a model's answers to them",
        **command_help("With `eval.share` and `eval.memory.dialogues` / `eval.speech.dialogues` in the curate config,\n"
                       "`omnicurate curate` holds a share of the sources out of training and plans a memory set\n"
                       "(MMMB-style: the final question recalls earlier turns, spread over memory type x turn\n"
                       "distance x items recalled) and a speech set (MSIB-style: 2-10 spoken turns, the answer\n"
                       "spoken too) from them alone, under OUT/eval/. These commands list and score them.",
                       "omnicurate evalset list --dataset /data/omni-v1",
                       "omnicurate evalset score --evalset /data/omni-v1 --answers answers.jsonl --report r.html"))
    sub = p.add_subparsers(dest="evalset_command", required=True, metavar="ACTION")
    listing = sub.add_parser(
        "list", help="print each eval set's size and where its question and answer-key files are",
        **command_help("Print the eval sets a dataset's manifest names: items, dialogues wanted, and the paths of\n"
                       "questions.jsonl (what a model is asked) and answer_key.jsonl (what the scorer reads).",
                       "omnicurate evalset list --dataset /data/omni-v1"))
    listing.add_argument("--dataset", required=True, help="a curated dataset (its manifest names its eval sets)")
    listing.set_defaults(run=run_list)
    score = sub.add_parser(
        "score", help="accuracy by memory type, turn distance and items recalled, and a 1-5 content score",
        **command_help("Score a model's final answers (one {\"id\": ..., \"answer\": ...} per line, ids from\n"
                       "questions.jsonl) against the grounded answer keys: accuracy by memory type, by turn distance\n"
                       "and by items recalled, and the 1-5 content score, as a table and an HTML report with plots.\n"
                       "Answers are judged by rules (every part of the key stated), or by a judge model over an\n"
                       "OpenAI-compatible endpoint (key from OMNICURATE_API_KEY); the rules stand in where it fails.",
                       "omnicurate evalset score --evalset /data/omni-v1 --answers answers.jsonl",
                       "omnicurate evalset score --evalset /data/omni-v1/eval/memory --answers a.jsonl "
                       "--judge-url http://127.0.0.1:8000/v1 --judge-model qwen3-8b"))
    score.add_argument("--evalset", required=True,
                       help="a curated dataset (every eval set it names) or one eval set's folder")
    score.add_argument("--answers", required=True, help='JSONL, one {"id": ..., "answer": ...} per line')
    score.add_argument("--report", help="HTML report to write (default: beside the answers, .report.html)")
    score.add_argument("--judge-url", help="base URL of an OpenAI-compatible server to judge answers")
    score.add_argument("--judge-model", help="model name of the judge (with --judge-url)")
    score.set_defaults(run=run_score)


def eval_set_folders(path: str) -> dict[str, str]:
    """Set name -> folder: the eval sets a dataset's manifest names, or the one set ``path`` is."""
    from pipelines.dataset.location import as_location
    from pipelines.dataset.manifest import read_manifest
    from schemas.dataset_format import ANSWER_KEY_FILE

    location = as_location(path)
    if location.exists(ANSWER_KEY_FILE):
        return {location.url.rstrip("/").rsplit("/", 1)[-1]: location.url}
    manifest = read_manifest(location)
    return {name: f"{location.url.rstrip('/')}/{rel}" for name, rel in sorted(manifest.eval_sets.items())}


def run_list(args: argparse.Namespace) -> int:
    from pipelines.dataset.manifest import read_manifest
    from schemas.dataset_format import ANSWER_KEY_FILE, QUESTIONS_FILE

    folders = eval_set_folders(args.dataset)
    if not folders:
        print(f"{args.dataset}: no eval sets (set eval.share and eval.memory/speech.dialogues when curating)")
        return 0
    for name, folder in folders.items():
        counts = read_manifest(folder).counts
        print(f"{name} set: {counts.get('items', 0)} items ({counts.get('wanted', 0)} wanted, "
              f"{counts.get('samples', 0)} samples in its shards) at {folder}")
        print(f"    questions {folder}/{QUESTIONS_FILE}\n    answers   {folder}/{ANSWER_KEY_FILE}")
    return 0


def _read_answers(path: str) -> dict[str, str]:
    answers: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answers[str(row["id"])] = str(row["answer"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: expected {{\"id\": ..., \"answer\": ...}}") from None
    return answers


def run_score(args: argparse.Namespace) -> int:
    from curators.evalset import endpoint_judge, judge_answers, score_table
    from pipelines.dataset.eval_report import render_score_report, score_lines
    from pipelines.eval_stage import read_eval_set

    if bool(args.judge_url) != bool(args.judge_model):
        print("omnicurate evalset: --judge-url and --judge-model go together", file=sys.stderr)
        return 2
    try:
        answers = _read_answers(args.answers)
    except ValueError as exc:
        print(f"omnicurate evalset: {exc}", file=sys.stderr)
        return 2
    questions, keys = {}, []
    for folder in eval_set_folders(args.evalset).values():
        qs, ks = read_eval_set(folder)
        questions.update((q.id, q) for q in qs)
        keys.extend(ks)
    if not keys:
        print(f"omnicurate evalset: {args.evalset} holds no eval items", file=sys.stderr)
        return 2
    judge = None
    if args.judge_url:
        from curators.writers.endpoint import EndpointWriter

        judge = endpoint_judge(EndpointWriter(args.judge_url, args.judge_model))
    judged = judge_answers(keys, answers, questions, judge)
    rows = score_table(keys, judged)
    print("\n".join(score_lines(rows)))
    by_model = sum(j.judged_by == "model" for j in judged)
    if judge is not None:
        print(f"{by_model} of {len(judged)} answers judged by {args.judge_model}, the rest by the rules")
    unknown = set(answers) - {k.id for k in keys}
    if unknown:
        print(f"{len(unknown)} answers name no item of these eval sets", file=sys.stderr)
    report = Path(args.report or os.path.splitext(args.answers)[0] + ".report.html")
    report.write_text(render_score_report(rows, f"Eval scores: {args.answers}"))
    print(f"report {report}")
    return 0
