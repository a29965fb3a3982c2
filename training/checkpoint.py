"""Torch distributed checkpoints holding model, optimizer and loader state; weight loading and checkpoint merging.

A checkpoint is a directory ``step-NNNNNNNN``: the DCP shards of model and optimizer, ``loader_state.json``
(the union of every rank's consumed samples) and ``COMPLETE``, written last, so a crash mid-save is never resumed.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultSavePlanner
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
    """Model weights only (a previous stage's checkpoint, or the latest under its checkpoint_dir); parts the
    checkpoint lacks keep their initialisation."""
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    model_sd = get_model_state_dict(model)
    state = {"model": model_sd}
    dcp.load(state, checkpoint_id=str(resolve_checkpoint(path)), planner=DefaultLoadPlanner(allow_partial_load=True))
    set_model_state_dict(model, state["model"], options=StateDictOptions(strict=False))


def initialise_optimizer_state(optimizer) -> None:
    """Give every trainable parameter its optimizer state now (one step with zero gradients at lr 0).

    A part that sees no gradient before a save (no audio in the first batches) would otherwise have no state in
    the checkpoint while a fresh optimizer on resume has one, and the two would not line up. The step count is
    put back to zero, so the first real update is a fresh optimizer's (Adam's bias correction counts steps).
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
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor):
            step.zero_()  # in place: the tensor keeps the dtype and device the optimizer chose for it
        elif step is not None:
            state["step"] = type(step)(0)


def frozen_copy(model):
    """A frozen reference model (DPO) that shares no parameters with ``model``."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


class MergeError(ValueError):
    """Checkpoints that cannot be merged as asked: bad weights, an occupied output, another architecture."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A complete checkpoint directory as given, or the latest complete one under a run's ``checkpoint_dir``."""
    given = Path(path)
    if (given / COMPLETE).is_file():
        return given
    latest = latest_checkpoint(given)
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a complete checkpoint (no {COMPLETE} file) "
                                "nor a checkpoint_dir holding one")
    return latest


def checkpoint_model_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Model tensor name -> shape, read from a checkpoint's metadata (no tensor data is loaded)."""
    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    return {key.removeprefix("model."): tuple(meta.size) for key, meta in metadata.state_dict_metadata.items()
            if key.startswith("model.") and hasattr(meta, "size")}


def _check_same_architecture(path: Path, model_shapes: dict[str, tuple[int, ...]]) -> None:
    held = checkpoint_model_shapes(path)
    missing = sorted(model_shapes.keys() - held.keys())
    extra = sorted(held.keys() - model_shapes.keys())
    resized = sorted(k for k in model_shapes.keys() & held.keys() if held[k] != model_shapes[k])
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the model's tensors missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} tensors the model lacks (e.g. {extra[0]})")
    if resized:
        name = resized[0]
        problems.append(f"{len(resized)} tensors of another shape (e.g. {name}: {list(held[name])} in the "
                        f"checkpoint, {list(model_shapes[name])} in the model)")
    if problems:
        raise MergeError(f"{path} is not a checkpoint of the configured model: {'; '.join(problems)} "
                         "(give the config the checkpoints were trained with)")


def merge_checkpoints(paths: list[str | Path], weights: list[float] | None, out: str | Path, model) -> str:
    """Weighted mean of the model weights of several checkpoints (same architecture) into a new checkpoint.

    ``model`` gives the architecture: only its tensors' names, shapes and dtypes are read, so a model on the
    ``meta`` device will do. A path may be a run's ``checkpoint_dir`` (its latest checkpoint is taken).
    ``weights`` default to equal; they are normalised.

    The merge streams: one tensor at a time is read from every checkpoint, averaged in float32 and written,
    so memory holds a few copies of the largest tensor, never the model. The output is a torch distributed
    checkpoint with one file per tensor (the writer keeps every tensor of a file alive until the file is done).
    """
    if not paths:
        raise MergeError("merge needs at least one checkpoint")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise MergeError(f"{len(weights)} weights for {len(paths)} checkpoints: give one weight per checkpoint, "
                         "in the same order (or none for equal weights)")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise MergeError(f"every weight must be a positive number, got {weights}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"output {out} already exists and is not an empty directory")
    resolved = [resolve_checkpoint(p) for p in paths]
    layout = {name: torch.empty(t.shape, dtype=t.dtype, device="meta")
              for name, t in get_model_state_dict(model).items()}
    model_shapes = {name: tuple(t.shape) for name, t in layout.items()}
    for path in resolved:
        _check_same_architecture(path, model_shapes)
    total = sum(weights)
    sources = [(_MetadataOnceReader(str(path)), weight / total) for path, weight in zip(resolved, weights)]

    def merged(name: str) -> torch.Tensor:
        like = layout[name]
        if not like.is_floating_point():  # integer buffers are not averaged: the last checkpoint's value
            return _load_one(sources[-1][0], name, like)
        mean = torch.zeros(like.shape, dtype=torch.float32)
        for reader, share in sources:
            mean.add_(_load_one(reader, name, like), alpha=share)
        return mean.to(like.dtype)

    dcp.save({"model": layout}, storage_writer=dcp.FileSystemWriter(str(out), single_file_per_rank=False),
             planner=_MergingSavePlanner(merged), no_dist=True)
    (out / LOADER_STATE).write_text(json.dumps({**LoaderState().to_dict(), "step": 0, "world_size": 1,
                                                "merged_from": [str(p) for p in resolved], "weights": weights}))
    (out / COMPLETE).write_text("0")
    return str(out)


def _load_one(reader: dcp.FileSystemReader, name: str, like: torch.Tensor) -> torch.Tensor:
    held = torch.empty(like.shape, dtype=like.dtype)
    dcp.load({"model": {name: held}}, storage_reader=reader, no_dist=True)
    return held


class _MetadataOnceReader(dcp.FileSystemReader):
    """A checkpoint reader that unpickles the metadata once for the many one-tensor loads of a merge."""

    _metadata = None

    def read_metadata(self, *args, **kwargs):
        if self._metadata is None:
            self._metadata = super().read_metadata(*args, **kwargs)
        return self._metadata


class _MergingSavePlanner(DefaultSavePlanner):
    """Saves a state dict of meta tensors, computing each tensor's data only when the writer asks for it."""

    def __init__(self, merged: Callable[[str], torch.Tensor]):
        super().__init__()
        self._merged = merged

    def lookup_object(self, index):
        return self._merged(index.fqn.removeprefix("model."))
