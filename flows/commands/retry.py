"""``omnicurate retry --failed``: re-run only the items the run ledger marks failed, then re-commit."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from flows.commands.curate import add_config_arguments

    p = sub.add_parser("retry", help="re-run the sources that failed in an earlier run of the same dataset")
    p.add_argument("--failed", action="store_true", required=True, help="retry the items marked failed")
    add_config_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.commands.curate import config_from_args
    from flows.curate_flow import run_curate
    from pipelines.run_ledger import RunLedger

    cfg = config_from_args(args)
    forgotten = RunLedger(Path(cfg.work_path) / "ledger").forget_failed()
    print(f"retrying {forgotten} failed item(s)")
    run_curate(cfg)
    return 0
