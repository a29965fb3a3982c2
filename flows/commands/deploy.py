"""``omnicurate deploy``: serve the curate flow on a cron schedule (Prefect ``serve``)."""

from __future__ import annotations

import argparse

from flows.commands import command_help


def register(sub: argparse._SubParsersAction) -> None:
    from flows.commands.curate import add_config_arguments

    p = sub.add_parser(
        "deploy", help="run curation on a schedule (Prefect)",
        **command_help("Serve the curate flow from this process on a cron schedule, against the Prefect API\n"
                       "configured (PREFECT_API_URL); each run resumes the dataset's ledger.",
                       'omnicurate deploy --config run.yaml --cron "0 3 * * *"    # nightly at 03:00'))
    add_config_arguments(p)
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 3 * * *"')
    p.add_argument("--name", default="curate-scheduled", help="deployment name")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from flows.commands.curate import config_from_args
    from flows.curate_flow import curate_flow
    from schemas.validation import SchemaError, to_dict

    cfg = config_from_args(args)
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=args.cron)
    except ValueError:
        raise SchemaError("cron", f"not a valid cron expression: {args.cron!r}") from None

    print(f"serving deployment curate/{args.name} on cron {args.cron!r} (Ctrl-C to stop)", flush=True)
    curate_flow.serve(name=args.name, cron=args.cron, parameters={"config": to_dict(cfg), "progress": False},
                      tags=["omnicurate"], description=f"curate {cfg.input} -> {cfg.output}")
    return 0
