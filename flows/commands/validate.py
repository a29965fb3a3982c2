"""``omnicurate validate --dataset DIR``: re-hash shards and cross-check manifest, tars, indexes and catalog."""

from __future__ import annotations

import argparse
import sys

from flows.commands import command_help


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check that a dataset is complete and uncorrupted",
        **command_help("Re-hash every shard against manifest.json and check that the manifest, the tars, their\n"
                       "indexes and the catalog agree, and that every member a turn names exists. Prints ok,\n"
                       "or the problems and exits 1.",
                       "omnicurate validate --dataset /data/omni-v1",
                       "omnicurate validate --dataset s3://datasets/omni-v1"))
    p.add_argument("--dataset", required=True, help="dataset directory or s3:// / gs:// prefix")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.dataset.validate import validate_dataset

    problems = validate_dataset(args.dataset)
    if problems:
        print(f"{args.dataset}: {len(problems)} problem(s)", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: ok")
    return 0
