"""CLI subcommands; each module has register(subparsers)."""

from __future__ import annotations

import argparse


def command_help(description: str, *examples: str) -> dict:
    """Keyword arguments for ``add_parser``: what the command is for, then an ``examples:`` epilog, kept as
    written (one command line per example, a comment after ``#``)."""
    lines = "\n".join(f"  {e}" for e in examples)
    return {"description": description, "epilog": f"examples:\n{lines}",
            "formatter_class": argparse.RawDescriptionHelpFormatter}
