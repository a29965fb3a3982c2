"""``omnicurate validate --dataset DIR``: re-hash shards and cross-check manifest, tars, indexes and catalog."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="check a dataset: shard hashes, counts, catalog, turn members",
                              description=__doc__)
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
