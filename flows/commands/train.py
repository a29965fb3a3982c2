"""``omnicurate train``: train the omni model on shards (tiny on CPU, or the configured size on GPU nodes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.commands import command_help


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the omni model on a dataset's shards",
        **command_help("Train the omni model (vision and audio encoders, LLM, speech decoder) on WebDataset\n"
                       "shards from a directory or bucket; prints the loss per step. Give --shards for a quick\n"
                       "tiny run on CPU, or --config for a stage at its configured size (torchrun or Ray Train).",
                       "omnicurate train --shards /data/omni-v1 --steps 10",
                       "omnicurate train --config sft.yaml --checkpoint-dir runs/sft",
                       "torchrun --nproc-per-node 8 -m flows.cli train --config sft.yaml   # on a GPU node"))
    p.add_argument("--config", help="training YAML (training.config.TrainConfig); flags below override it")
    p.add_argument("--shards", help="shard URL(s): dataset dir, manifest.json, tar, brace range, s3://, gs://; "
                                    "several joined with '::'")
    p.add_argument("--steps", type=int, help="optimizer steps (default 10)")
    p.add_argument("--stage", choices=["pretrain1", "pretrain2", "pretrain3", "sft", "speech", "dpo"])
    p.add_argument("--lr", type=float)
    p.add_argument("--max-tokens", type=int, help="longest packed row (default 32768)")
    p.add_argument("--batch-rows", type=int, help="rows per batch")
    p.add_argument("--workers", type=int, help="dataloader worker processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-dir", help="save torch distributed checkpoints here and resume from the latest")
    p.add_argument("--launcher", choices=["local", "ray"], default="local",
                   help="local: this process (or the torchrun rank it is); ray: Ray Train TorchTrainer")
    p.set_defaults(run=run)
    actions = p.add_subparsers(dest="train_action", metavar="{merge}", required=False)
    m = actions.add_parser(
        "merge", help="weighted mean of checkpoints' model weights into a new checkpoint",
        **command_help("Average the model weights of checkpoints of one architecture (weights normalised); the\n"
                       "result starts a later stage through init_from.",
                       "omnicurate train merge --config sft.yaml --checkpoint runs/a --checkpoint runs/b "
                       "--weight 0.7 --weight 0.3 --out runs/merged"))
    m.add_argument("--config", required=True, help="the training YAML the checkpoints were trained with "
                                                   "(it fixes the architecture)")
    m.add_argument("--checkpoint", action="append", required=True, metavar="DIR",
                   help="a checkpoint (step-N directory) or a run's checkpoint_dir (its latest); repeat for each")
    m.add_argument("--weight", action="append", type=float, metavar="W",
                   help="one per --checkpoint, in the same order (default: equal)")
    m.add_argument("--out", required=True, metavar="DIR", help="new checkpoint directory (must not exist)")
    m.set_defaults(run=run_merge)


def build_config(args: argparse.Namespace):
    from dataclasses import replace

    from schemas.validation import SchemaError, from_dict
    from training.config import TrainConfig, load_train_config

    if args.config:
        config = load_train_config(args.config)
    elif args.shards:
        config = from_dict(TrainConfig, {"data": {"sources": [{"url": args.shards}]}})
    else:
        raise SchemaError("shards", "give --shards URL or --config FILE")
    data = config.data
    if args.shards and args.config:
        data = from_dict(type(data), {**_as_dict(data), "sources": [{"url": args.shards}]})
    overrides = {"max_tokens": args.max_tokens, "batch_rows": args.batch_rows, "num_workers": args.workers}
    data = replace(data, **{k: v for k, v in overrides.items() if v is not None})
    top = {"steps": args.steps, "stage": args.stage, "seed": args.seed, "checkpoint_dir": args.checkpoint_dir}
    config = replace(config, data=data, **{k: v for k, v in top.items() if v is not None})
    if args.lr is not None:
        config = replace(config, optim=replace(config.optim, lr=args.lr))
    return from_dict(TrainConfig, _as_dict(config))  # re-validate the merged config


def _as_dict(record):
    from schemas.validation import to_dict

    return to_dict(record)


def run(args: argparse.Namespace) -> int:
    from training.launch import launch

    config = build_config(args)

    from training.metrics import METRICS_FILE, PLOT_FILE, format_step

    def show(report) -> None:
        print(format_step(report, config.steps), flush=True)

    result = launch(config, launcher=args.launcher, on_step=show)
    if result is not None and result.checkpoint:  # rank 0 alone returns the run's result
        folder = Path(config.checkpoint_dir)
        print(f"checkpoint: {result.checkpoint}")
        print(f"metrics: {folder / METRICS_FILE} (plot: {folder / PLOT_FILE})")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    import sys

    from training.checkpoint import MergeError
    from training.config import load_train_config
    from training.trainer import merge_trained

    config = load_train_config(args.config)
    try:
        out = merge_trained(config, args.checkpoint, args.weight, args.out)
    except MergeError as exc:
        print(f"omnicurate train merge: {exc}", file=sys.stderr)
        return 2
    print(f"merged: {out}")
    return 0
