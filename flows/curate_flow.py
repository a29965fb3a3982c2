"""The ``curate`` Prefect flow: one coarse task per stage, each running its Ray job."""

from __future__ import annotations


from flows.prefect_env import prepare_prefect_env

prepare_prefect_env()

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from schemas.config import CurateConfig
from schemas.validation import from_dict, to_dict


def _retry_transient(task, task_run, state) -> bool:
    """Retry only what a second try can fix (I/O, a lost Ray node); programming errors fail at once."""
    from pipelines.ray_runtime import is_transient

    return is_transient(state.data if isinstance(state.data, BaseException) else None)


@task(name="connect-ray", retries=2, retry_delay_seconds=[2, 10])
def connect_ray(address: str | None) -> dict:
    from pipelines.ray_runtime import ensure_ray

    return ensure_ray(address)


@task(name="partitions", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_transient)
def partition_task(cfg: CurateConfig):
    from pipelines.curate_run import plan_run

    plan = plan_run(cfg)
    get_run_logger().info("partitions: %d sources in %d partitions", plan.sources, plan.count)
    return plan


@task(name="media", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_transient)
def media_task(cfg: CurateConfig, plan, progress: bool):
    from pipelines.curate_run import check_failures, run_media_phase

    totals = run_media_phase(cfg, plan, progress)
    get_run_logger().info("media: %d sources, %d clips, %d failed", totals.sources,
                          sum(p.clips for p in totals.partitions), totals.failed)
    check_failures(cfg, totals)
    return totals


@task(name="dedup", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_transient)
def dedup_task(cfg: CurateConfig, plan) -> int:
    from pipelines.curate_run import run_dedup_phase

    duplicates = run_dedup_phase(cfg, plan)
    get_run_logger().info("dedup: %d clips are copies of media kept in another partition", duplicates)
    return duplicates


@task(name="shards", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_transient)
def shard_task(cfg: CurateConfig, plan, totals, duplicates: int, progress: bool):
    from pipelines.curate_run import commit_run, run_commit_phase

    records = run_commit_phase(cfg, plan, totals, progress)
    manifest = commit_run(cfg, plan, totals, records, duplicates)
    get_run_logger().info("shards: %d committed, %d samples", len(manifest.shards), manifest.total_samples)
    return manifest


REPORT_FILE = "report.html"
"""Rendered beside the dataset by every run, for reviewers."""


@task(name="report", retries=1, retry_delay_seconds=[5])
def report_task(cfg: CurateConfig) -> tuple[str, dict]:
    """Render the review report (plots) beside the dataset; returns where it is and the figures it shows."""
    from pipelines.dataset.location import as_location
    from pipelines.dataset.review_render import render_report, report_data

    location = as_location(cfg.output)
    data = report_data(location)
    location.write_bytes((REPORT_FILE,), render_report(location, data).encode())
    return location.path(REPORT_FILE), data


@flow(name="curate", log_prints=True, validate_parameters=False)
def curate_flow(config: dict, progress: bool = True) -> dict:
    """Curate the sources named in ``config`` into a dataset; returns the manifest counts."""
    from prefect.runtime import flow_run

    cfg = from_dict(CurateConfig, config)
    run_logging(str(flow_run.id))
    logger = get_run_logger()
    logger.info("curate %s -> %s (config %s, seed %d)", cfg.input, cfg.output, cfg.config_hash(), cfg.seed)
    connect_ray(cfg.ray_address)
    plan = partition_task(cfg)
    totals = media_task(cfg, plan, progress)
    duplicates = dedup_task(cfg, plan)
    manifest = shard_task(cfg, plan, totals, duplicates, progress)
    report, figures = report_task(cfg)
    _publish_summary(cfg, manifest, report, figures)
    logger.info("dataset committed: %s (report %s)", cfg.output, report)
    return dict(manifest.counts)


def run_logging(run_id: str) -> None:
    """Every omnicurate log line of this process carries the flow run id."""
    import logging

    class RunIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.run_id = run_id[:8]
            return True

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | run %(run_id)s | %(name)s - %(message)s",
                                           "%H:%M:%S"))
    handler.addFilter(RunIdFilter())
    for name in ("curators", "pipelines", "training"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _publish_summary(cfg: CurateConfig, manifest, report: str, data: dict) -> None:
    counts = "\n".join(f"| {k} | {v} |" for k, v in sorted(manifest.counts.items()))
    reasons = "\n".join(f"| {r['reason']} | {r['files']} |" for r in data["quarantine_reasons"]) or "| none | 0 |"
    rates = "\n".join(f"| {r['filter']} | {r['verdicts']} | {r['pass_rate']:.1%} |" for r in data["filter_pass_rates"])
    create_markdown_artifact(
        key="curate-summary",
        markdown=(f"# Curated dataset\n\n`{cfg.output}` (config `{cfg.config_hash()}`, seed {cfg.seed})\n\n"
                  f"Report with plots: `{report}`\n\n## Counts\n\n| count | value |\n|---|---|\n{counts}\n\n"
                  f"## Quarantine reasons\n\n| reason | files |\n|---|---|\n{reasons}\n\n"
                  f"## Filter pass rates\n\n| filter | verdicts | passed |\n|---|---|---|\n{rates}\n"),
        description="Counts, quarantine reasons and filter pass rates of the curated dataset",
    )


def run_curate(cfg: CurateConfig, progress: bool = True) -> dict:
    """Run the flow in this process (a temporary Prefect server starts unless PREFECT_API_URL is set)."""
    from flows.prefect_server import local_api

    with local_api():
        return curate_flow(to_dict(cfg), progress=progress)
