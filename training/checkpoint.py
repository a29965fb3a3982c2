"""Torch distributed checkpoints holding model, optimizer and loader state; weight loading and checkpoint merging.

A checkpoint is a directory ``step-NNNNNNNN``: the DCP shards of model and optimizer, ``loader_state.json``
(the union of every rank's consumed samples) and ``COMPLETE``, written last, so a crash mid-save is never resumed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_state_dict)

from training.loader import LoaderState

COMPLETE = "COMPLETE"
LOADER_STATE = "loader_state.json"
_STEP_RE = re.compile(r"^step-(\d{8})$")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    if _distributed():
        dist.barrier()


def checkpoint_path(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def latest_checkpoint(root: str | Path | None) -> Path | None:
    if not root or not Path(root).is_dir():
        return None
    done = [p for p in Path(root).iterdir() if _STEP_RE.match(p.name) and (p / COMPLETE).exists()]
    return max(done, key=lambda p: p.name) if done else None


def _gather_loader_states(state: LoaderState, world_size: int) -> LoaderState:
    if not _distributed() or world_size == 1:
        return state
    payload = json.dumps(state.to_dict())
    gathered: list[str | None] = [None] * world_size
    dist.all_gather_object(gathered, payload)
    return LoaderState.merge([LoaderState.from_dict(json.loads(p)) for p in gathered])


def save_checkpoint(root: str | Path, step: int, model, optimizer, loader_state: LoaderState,
                    rank: int = 0, world_size: int = 1) -> str:
    path = checkpoint_path(root, step)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
    merged = _gather_loader_states(loader_state, world_size)
    if rank == 0:
        data = merged.to_dict()
        data["step"] = step
        data["world_size"] = world_size
        (path / LOADER_STATE).write_text(json.dumps(data))
        (path / COMPLETE).write_text(str(step))
    _barrier()
    return str(path)


def load_checkpoint(path: str | Path, model, optimizer, rank: int = 0, world_size: int = 1) -> tuple[int, LoaderState]:
    """Restore model and optimizer in place; returns (step, loader state to resume the data from)."""
    path = Path(path)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    data = json.loads((path / LOADER_STATE).read_text())
    loader = LoaderState.from_dict(data)
    if data.get("world_size", 1) != world_size:
        # batch counts per rank are meaningless with a different rank count; identity filtering still holds
        loader.batches = 0
    return int(data["step"]), loader


def load_model_weights(model, path: str | Path) -> None:
    """Model weights only (a previous stage's checkpoint); parts the checkpoint lacks keep their initialisation."""
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    model_sd = get_model_state_dict(model)
    state = {"model": model_sd}
    dcp.load(state, checkpoint_id=str(path), planner=DefaultLoadPlanner(allow_partial_load=True))
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))


def initialise_optimizer_state(optimizer) -> None:
    """Give every trainable parameter its optimizer state now (one step with zero gradients at lr 0).

    A part that sees no gradient before a save (no audio in the first batches) would otherwise have no state in
    the checkpoint while a fresh optimizer on resume has one, and the two would not line up.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    optimizer.step()
    for group, lr in zip(optimizer.param_groups, saved):
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)


def frozen_copy(model):
    """A frozen reference model (DPO) that shares no parameters with ``model``."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def merge_checkpoints(paths: list[str | Path], weights: list[float] | None, out: str | Path, model) -> str:
    """Weighted average of the model weights of several checkpoints (same architecture) into a new checkpoint.

    ``model`` is a freshly built model of that architecture, used as the container.
    """
    if not paths:
        raise ValueError("merge needs at least one checkpoint")
    weights = weights or [1.0] * len(paths)
    if len(weights) != len(paths) or sum(weights) <= 0:
        raise ValueError("need one positive weight per checkpoint")
    total = sum(weights)
    merged: dict[str, torch.Tensor] = {}
    for path, weight in zip(paths, weights):
        load_model_weights(model, path)
        for name, tensor in get_model_state_dict(model).items():
            if tensor.is_floating_point():
                acc = merged.setdefault(name, torch.zeros_like(tensor, dtype=torch.float32))
                acc.add_(tensor.float(), alpha=weight / total)
            else:
                merged[name] = tensor.clone()
    current = get_model_state_dict(model)
    set_model_state_dict(model, {k: v.to(current[k].dtype) for k, v in merged.items()})
    out = Path(out)
    dcp.save({"model": get_model_state_dict(model)}, checkpoint_id=str(out))
    (out / LOADER_STATE).write_text(json.dumps({**LoaderState().to_dict(), "step": 0, "world_size": 1,
                                                "merged_from": [str(p) for p in paths], "weights": weights}))
    (out / COMPLETE).write_text("0")
    return str(out)
