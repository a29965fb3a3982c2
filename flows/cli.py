"""The ``omnicurate`` command line: one subcommand per module under ``flows/commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines ``register(subparsers)`` adding its subcommand(s) with ``set_defaults(run=callable)``.
COMMAND_MODULES = ("corpus", "curate", "review", "validate", "train", "evalset", "demo", "deploy", "retry")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnicurate", description=__doc__)
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
