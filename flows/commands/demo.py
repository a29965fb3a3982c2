"""``omnicurate demo``: the main job end to end on its embedded defaults."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from flows.commands import command_help


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole job on a synthetic corpus: curate, review, validate, train a few steps",
        **command_help("Synthesise a small corpus (with three broken files), curate it with the embedded models\n"
                       "(spoken user turns included) with a small memory and speech eval set from held-out sources,\n"
                       "query its catalog, render a spoken dialogue and a report, validate it and train the tiny\n"
                       "omni model a few steps on its shards. Needs no network.",
                       "omnicurate demo",
                       "omnicurate demo --workdir /tmp/omni-demo --seed 1 --train-steps 10"))
    p.add_argument("--workdir", default="demo-out", help="where the corpus, dataset and checkpoints go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="reuse an existing corpus and dataset in --workdir")
    p.set_defaults(run=run)


EVAL_SHARE = 0.2
EVAL_MEMORY = 8
EVAL_SPEECH = 2
"""The demo holds this share of its sources out of training and plans a small memory and speech set from them."""


def eval_set_sizes(dataset: Path) -> dict[str, int]:
    """Items in each eval set the dataset's manifest names."""
    from pipelines.dataset.manifest import read_manifest

    return {name: read_manifest(dataset / rel).counts.get("items", 0)
            for name, rel in sorted(read_manifest(dataset).eval_sets.items())}


def plant_bad_files(corpus: Path) -> list[str]:
    """Add the three kinds of broken input every run must survive: empty, truncated, not media."""
    video = next(iter(sorted(corpus.glob("**/*.mp4"))), None)
    bad = corpus / "broken"
    bad.mkdir(exist_ok=True)
    (bad / "empty.mp4").write_bytes(b"")
    if video is not None:
        data = video.read_bytes()
        (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (bad / "notes.mp4").write_text("this is a text file wearing a video's name\n")
    return sorted(str(p) for p in bad.iterdir())


def spoken_turns(dataset: Path) -> tuple[int, str | None]:
    """Spoken messages of the kept dialogues, as the catalog counts them, and the key of the most spoken one."""
    from pipelines.dataset.catalog import query

    rows = query(dataset, "SELECT key, num_spoken_messages AS n FROM samples WHERE kept AND num_spoken_messages > 0 "
                          "ORDER BY n DESC, key").to_pylist()
    return sum(r["n"] for r in rows), rows[0]["key"] if rows else None


def _step(title: str, argv: list[str]) -> None:
    from flows.cli import main

    print(f"\n==> {title}\n    omnicurate {' '.join(argv)}", flush=True)
    started = time.monotonic()
    code = main(argv)
    if code:
        raise SystemExit(f"demo step failed ({title}), exit code {code}")
    print(f"    done in {time.monotonic() - started:.1f}s", flush=True)


def run(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    corpus, dataset = work / "corpus", work / "dataset"
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if not (corpus / "facts.jsonl").exists():
        _step("synthesise a media corpus with known ground truth", ["corpus", "synth", str(corpus), "--seed", str(args.seed)])
        plant_bad_files(corpus)
    if not (dataset / "manifest.json").exists():
        _step("curate: probe, decode, ASR, dialogues, filters, speech, shards, catalog",
              ["curate", "--input", str(corpus), "--out", str(dataset), "--seed", str(args.seed), "--no-summary",
               "--eval-share", str(EVAL_SHARE), "--eval-memory", str(EVAL_MEMORY), "--eval-speech", str(EVAL_SPEECH)])
    _step("review: question types and spoken turns in the catalog",
          ["review", "sql", ("SELECT question_type, count(*) AS turns, count(user_speech) AS spoken, "
                             "max(memory_distance) AS max_distance FROM turns GROUP BY 1 ORDER BY 2 DESC"),
           "--dataset", str(dataset)])
    spoken, key = spoken_turns(dataset)
    if not spoken:
        raise SystemExit("demo: the dataset has no spoken turns (is speech.enabled false?)")
    print(f"    spoken turns: {spoken} in the kept dialogues (sum of samples.num_spoken_messages)", flush=True)
    page = work / "spoken-sample.html"
    _step("review: one spoken dialogue as a page (audio players for its spoken turns)",
          ["review", "show", key, "--dataset", str(dataset), "--html", str(page)])
    _step("validate the dataset", ["validate", "--dataset", str(dataset)])
    _step("eval sets planned from held-out sources", ["evalset", "list", "--dataset", str(dataset)])
    sizes = eval_set_sizes(dataset)
    if not all(sizes.values()):  # a tiny corpus of another seed may hold no source out, or too few
        print(f"    note: eval set sizes {sizes}: this corpus held too few sources out (eval.share {EVAL_SHARE})")
    report = work / "report.html"
    _step("render the review report (plots)", ["review", "report", "--dataset", str(dataset), "--out", str(report)])
    run_dir = work / "train"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time, not a resume of the last demo's
    _step("train the tiny omni model a few steps on the shards",
          ["train", "--shards", str(dataset / "manifest.json"), "--steps", str(args.train_steps),
           "--max-tokens", "8192", "--checkpoint-dir", str(run_dir)])

    from pipelines.dataset.summary import summarize_dataset

    print("\n" + "=" * 72)
    print(summarize_dataset(str(dataset)))
    print(f"report       {report}")
    print(f"spoken page  {page}")
    from training.metrics import PLOT_FILE

    print(f"training     {run_dir / PLOT_FILE}")
    print("=" * 72)
    return 0
