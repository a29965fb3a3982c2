"""The training loop: build tokenizer, model and loader from a TrainConfig, take optimizer steps, report the loss."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from training.config import TrainConfig
from training.loader import LoaderState, ShardDataset, make_dataloader
from training.metrics import MetricsLog, StepReport, plot_metrics
from training.stages import STAGES, apply_stage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TrainResult:
    steps: list[StepReport] = field(default_factory=list)
    loader_state: LoaderState | None = None
    checkpoint: str | None = None


def resolve_device(config: TrainConfig) -> torch.device:
    if config.launch.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.launch.device)


def build_model(config: TrainConfig, tokenizer, device: torch.device):
    from training.model.omni import OmniModel
    from training.tokenizer import SpecialIds

    special = SpecialIds.of(tokenizer)
    model_config = config.model_config(len(tokenizer))
    if model_config.llm.vocab_size < len(tokenizer) and not model_config.llm.pretrained:
        raise ValueError(f"llm.vocab_size {model_config.llm.vocab_size} < tokenizer length {len(tokenizer)}")
    torch.manual_seed(config.seed)
    model = OmniModel(model_config, special.img_context, special.audio_context,
                      attn_implementation=config.launch.attn_implementation)
    return model.to(device), model_config


def make_optimizer(model, config: TrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                                  betas=(0.9, 0.95))
    warmup = config.optim.warmup_steps

    def schedule(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup else 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def train(config: TrainConfig, on_step: Callable[[StepReport], None] | None = None,
          rank: int = 0, world_size: int = 1) -> TrainResult:
    """Run ``config.steps`` optimizer steps (resuming from ``checkpoint_dir`` when it holds a checkpoint)."""
    from training import checkpoint as ckpt
    from training.losses import stage_loss
    from training.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(config.tokenizer)
    device = resolve_device(config)
    model, model_config = build_model(config, tokenizer, device)
    stage = STAGES[config.stage]
    if config.init_from:
        ckpt.load_model_weights(model, config.init_from)
    apply_stage(model, stage)
    reference = None
    if stage.loss == "dpo":
        reference = ckpt.frozen_copy(model)
    wrapped = wrap_for_launch(model, config, device, world_size)
    optimizer, scheduler = make_optimizer(model, config)
    ckpt.initialise_optimizer_state(optimizer)

    state = LoaderState()
    start_step = 0
    latest = ckpt.latest_checkpoint(config.checkpoint_dir) if config.checkpoint_dir else None
    if latest:
        start_step, state = ckpt.load_checkpoint(latest, model, optimizer, rank=rank, world_size=world_size)
        scheduler.last_epoch = start_step
        log.info("resumed from %s at step %d", latest, start_step)

    dataset = ShardDataset(config.loader_config(model_config), tokenizer, state=state, rank=rank,
                           world_size=world_size)
    batches = iter(make_dataloader(dataset, pin_memory=device.type == "cuda"))
    result = TrainResult(loader_state=state)
    metrics = MetricsLog(config.checkpoint_dir, start_step) if config.checkpoint_dir and rank == 0 else None
    autocast = _autocast(config, device)
    model.train()
    for step in range(start_step, config.steps):
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            log.warning("data ran out after %d steps", step)
            break
        state.update(batch)
        with autocast:
            loss, tokens = stage_loss(stage.loss, wrapped, batch.to(device), reference=reference,
                                      beta=config.optim.dpo_beta)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                           config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        report = StepReport(step=step + 1, loss=loss.item(), tokens=tokens, seconds=time.perf_counter() - t0)
        result.steps.append(report)
        if metrics is not None:
            metrics.append(report)
        if on_step and (report.step % config.log_every == 0 or report.step == config.steps):
            on_step(report)
        every = config.checkpoint_every
        if config.checkpoint_dir and ((every and report.step % every == 0) or report.step == config.steps):
            result.checkpoint = ckpt.save_checkpoint(config.checkpoint_dir, report.step, model, optimizer, state,
                                                     rank=rank, world_size=world_size)
    if metrics is not None:
        plot_metrics(metrics.path)
    return result


def merge_trained(config: TrainConfig, checkpoints: list[str], weights: list[float] | None, out: str) -> str:
    """Weighted mean of checkpoints of the model ``config`` describes, written as a new checkpoint ``out``.

    The model is built on the meta device (its architecture, no weights) and the checkpoints are merged one
    tensor at a time; ``out`` can start a later stage through ``init_from``.
    """
    from training.checkpoint import merge_checkpoints
    from training.tokenizer import load_tokenizer

    return merge_checkpoints(checkpoints, weights, out, build_skeleton(config, load_tokenizer(config.tokenizer)))


def build_skeleton(config: TrainConfig, tokenizer):
    """The model ``config`` describes with its tensors on the meta device: names, shapes and dtypes only."""
    model_config = config.model_config(len(tokenizer))
    parts = (model_config.llm, model_config.vision, model_config.audio, model_config.speech)
    if any(part is not None and part.pretrained for part in parts):
        # transformers refuses to load a pretrained part onto the meta device: build it, then drop the weights
        model, _ = build_model(config, tokenizer, torch.device("cpu"))
        return model.to("meta")
    with torch.device("meta"):
        model, _ = build_model(config, tokenizer, torch.device("meta"))
    return model


def _autocast(config: TrainConfig, device: torch.device):
    if config.launch.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def wrap_for_launch(model, config: TrainConfig, device: torch.device, world_size: int):
    """The module the loss calls: the model itself, or its DDP/FSDP wrapper (see training/launch.py)."""
    if config.launch.parallel == "none" and not config.launch.activation_checkpointing:
        return model
    from training.launch import parallelize

    return parallelize(model, config, device, world_size)
