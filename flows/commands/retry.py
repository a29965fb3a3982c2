"""``omnicurate retry --failed``: re-run only the items the run ledger marks failed, then re-commit."""

from __future__ import annotations

import argparse

from flows.commands import command_help


def register(sub: argparse._SubParsersAction) -> None:
    from flows.commands.curate import add_config_arguments

    p = sub.add_parser(
        "retry", help="re-run only the sources that failed in an earlier run",
        **command_help("Re-run only the sources the dataset's run ledger marks failed (a lost worker, a timeout),\n"
                       "then re-commit the dataset. Give it the input, output and settings of the run that made it.",
                       "omnicurate retry --failed --input /data/media --out /data/omni-v1",
                       "omnicurate retry --failed --config run.yaml"))
    p.add_argument("--failed", action="store_true", required=True, help="retry the items marked failed")
    add_config_arguments(p)
    p.add_argument("--no-summary", action="store_true", help="do not print the dataset summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.commands.curate import config_from_args, run_and_report
    from pipelines.curate_run import forget_failed_sources

    cfg = config_from_args(args)
    print(f"retrying {forget_failed_sources(cfg)} failed source(s)")
    return run_and_report(cfg, summary=not args.no_summary)
