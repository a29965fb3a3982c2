"""The ``omnicurate`` command line: one subcommand per module under ``flows/commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines ``register(subparsers)`` adding its subcommand(s) with ``set_defaults(run=callable)``.
COMMAND_MODULES = ("corpus", "curate", "review", "validate", "train", "evalset", "demo", "deploy", "retry")

DESCRIPTION = """\
Curate multi-turn omni-modal dialogue datasets from raw media: videos, audio and
images become dialogues whose later questions need memory of earlier turns, with
spoken user turns, written as WebDataset shards with a DuckDB catalog. Then review
the dataset, export evaluation sets from it and train an omni model on it."""

EPILOG = """\
examples:
  omnicurate demo                       # the whole job on a synthetic corpus, offline
  omnicurate curate --input /data/media --out /data/omni-v1
  omnicurate review sql "SELECT filter, code, count(*) FROM verdicts WHERE NOT passed GROUP BY ALL" \\
      --dataset /data/omni-v1
  omnicurate train --shards /data/omni-v1 --steps 10

Run "omnicurate COMMAND --help" for a command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnicurate", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"flows.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"flows.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from schemas.validation import SchemaError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SchemaError as exc:
        print(f"omnicurate {args.command}: invalid input: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError) as exc:
        print(f"omnicurate {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
