"""``omnicurate review``: SQL over the read-only catalog, one sample as text or HTML, a report, a subset."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from flows.commands import command_help


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "review", help="look at a dataset: SQL over its catalog, one dialogue, a report, a subset",
        **command_help("Query a dataset's catalog (samples, turns, media, verdicts, quarantine, lineage, ...),\n"
                       "read or listen to one dialogue, plot the whole dataset, or cut a subset out of it.",
                       'omnicurate review sql "SELECT question_type, count(*) FROM turns GROUP BY ALL" '
                       "--dataset /data/omni-v1",
                       "omnicurate review show KEY --dataset /data/omni-v1 --html sample.html"))
    sub = p.add_subparsers(dest="review_command", required=True, metavar="ACTION")

    sql = sub.add_parser(
        "sql", help="run a read-only SQL query over the catalog views",
        **command_help("Run one read-only DuckDB query over the catalog's views and print the rows as a table,\n"
                       "CSV or JSON. The tables and their columns are listed in README.md.",
                       'omnicurate review sql "SELECT filter, code, count(*) FROM verdicts WHERE NOT passed '
                       'GROUP BY ALL" --dataset /data/omni-v1',
                       'omnicurate review sql "SELECT * FROM quarantine" --dataset /data/omni-v1 --format csv'))
    sql.add_argument("query", help='e.g. "SELECT question_type, count(*) FROM turns GROUP BY 1"')
    sql.add_argument("--dataset", required=True, help="dataset directory or bucket prefix")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    sql.set_defaults(run=run_sql)

    show = sub.add_parser(
        "show", help="print one sample's dialogue; --html writes a self-contained page",
        **command_help("Print one dialogue turn by turn with its question types, memory links, verdicts and\n"
                       "lineage; --html writes a page with its images, video, audio and spoken turns playable.",
                       "omnicurate review show KEY --dataset /data/omni-v1",
                       "omnicurate review show KEY --dataset /data/omni-v1 --html sample.html"))
    show.add_argument("key", help="sample key")
    show.add_argument("--dataset", required=True, help="dataset directory or bucket prefix")
    show.add_argument("--html", metavar="OUT", help="write a self-contained HTML page to OUT")
    show.set_defaults(run=run_show)

    report = sub.add_parser(
        "report", help="write an HTML report with plots of the dataset",
        **command_help("Write one self-contained HTML page with plots and the numbers under them: turns per\n"
                       "dialogue, question types, memory distances, media durations, quarantine reasons and\n"
                       "filter pass rates.",
                       "omnicurate review report --dataset /data/omni-v1 --out report.html"))
    report.add_argument("--dataset", required=True, help="dataset directory or bucket prefix")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.set_defaults(run=run_report)

    subset = sub.add_parser(
        "subset", help="copy the samples matching a SQL predicate into a new dataset",
        **command_help("Copy the kept samples matching a predicate over the samples view (their tar members\n"
                       "byte for byte) into a new, complete dataset with its own manifest and catalog.",
                       'omnicurate review subset --dataset /data/omni-v1 --where "num_memory_questions >= 2" '
                       "--out /data/omni-memory"))
    subset.add_argument("--dataset", required=True, help="source dataset")
    subset.add_argument("--where", required=True, help='predicate over the samples view, e.g. "num_turns >= 4"')
    subset.add_argument("--out", required=True, help="new dataset directory or bucket prefix")
    subset.add_argument("--shard-max-bytes", type=int, default=None, help="shard size bound of the new dataset")
    subset.add_argument("--shard-max-samples", type=int, default=None, help="samples per shard of the new dataset")
    subset.set_defaults(run=run_subset)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def format_rows(columns: list[str], rows: list[dict], fmt: str) -> str:
    """Render query rows as an aligned text table, CSV, or a JSON array of objects."""
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, default=str, indent=1)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(r[c]) for c in columns] for r in rows])
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [min(60, max([len(c), *(len(row[i]) for row in cells)])) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v[:w].ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def run_sql(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.dataset.catalog import ReadOnlyCatalogError, query

    try:
        table = query(args.dataset, args.query)
    except ReadOnlyCatalogError as exc:
        print(f"omnicurate review sql: {exc}", file=sys.stderr)
        return 1
    except (duckdb.Error, ValueError) as exc:
        print(f"omnicurate review sql: query failed: {exc}", file=sys.stderr)
        return 1
    print(format_rows(table.column_names, table.to_pylist(), args.format))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from pipelines.dataset.review_render import load_sample_view, render_sample_html, render_sample_text

    try:
        view = load_sample_view(args.dataset, args.key)
    except KeyError as exc:
        print(f"omnicurate review show: {exc.args[0]}", file=sys.stderr)
        return 1
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(render_sample_html(view))
        print(f"wrote {args.html}")
    else:
        print(render_sample_text(view))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from pipelines.dataset.review_render import render_report

    with open(args.out, "w", encoding="utf-8") as f:
        f.write(render_report(args.dataset))
    print(f"wrote {args.out}")
    return 0


def run_subset(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.dataset.subset import subset_dataset

    try:
        manifest = subset_dataset(args.dataset, args.where, args.out, max_bytes=args.shard_max_bytes,
                                  max_samples=args.shard_max_samples)
    except duckdb.Error as exc:
        print(f"omnicurate review subset: bad --where predicate: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest.total_samples} samples in {len(manifest.shards)} shard(s) to {args.out}")
    return 0
