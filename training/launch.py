"""Launch one config anywhere: this process, a torchrun rank (DDP or FSDP2), or Ray Train's TorchTrainer.

All parallelism lives here; the model modules hold none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
import torch.distributed as dist

from training.config import TrainConfig

log = logging.getLogger(__name__)


def parallelize(model, config: TrainConfig, device: torch.device, world_size: int):
    """Activation checkpointing on the LLM's decoder layers, then DDP or FSDP2 (per decoder layer + root)."""
    if config.launch.activation_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.launch.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # a batch may lack images or audio, leaving a tower without gradients that step
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    if config.launch.parallel == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if config.launch.precision == "bf16" else MixedPrecisionPolicy()
        for layer in model.llm.model.layers:
            fully_shard(layer, mp_policy=mp)
        for tower in (model.vision, model.audio):
            fully_shard(tower, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    return model


def _init_process_group(config: TrainConfig) -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; a process group when more than one rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        use_cuda = config.launch.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world


def _check_parallel(config: TrainConfig, world: int) -> None:
    if config.launch.parallel != "none" and world == 1 and not dist.is_initialized():
        raise ValueError(f"launch.parallel={config.launch.parallel} needs several ranks: start with torchrun "
                         "--nproc-per-node N or --launcher ray")


def run_rank(config: TrainConfig, on_step: Callable | None = None):
    """Train in this process as rank RANK of WORLD_SIZE (torchrun), or alone."""
    from training.trainer import train

    rank, world = _init_process_group(config)
    _check_parallel(config, world)
    if config.launch.device != "cpu" and torch.cuda.is_available() and dist.is_initialized():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        result = train(config, on_step=on_step if rank == 0 else None, rank=rank, world_size=world)
        return result if rank == 0 else None  # one rank speaks for the run
    finally:
        if dist.is_initialized() and world > 1:
            dist.destroy_process_group()


def _ray_train_loop(payload: dict) -> None:
    import ray.train

    from schemas.validation import from_dict
    from training.trainer import train

    config = from_dict(TrainConfig, payload)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    def report(step) -> None:
        if rank == 0:
            from training.metrics import format_step

            print(format_step(step, config.steps), flush=True)  # Ray forwards worker output to the driver
        ray.train.report({"step": step.step, "loss": step.loss, "tokens": step.tokens})

    train(config, on_step=report, rank=rank, world_size=world)


def run_ray(config: TrainConfig):
    """Ray Train's TorchTrainer with ``launch.ray_workers`` workers; it sets up the process group."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from schemas.validation import to_dict

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, num_cpus=None if address else 2,
                 include_dashboard=False, log_to_driver=True)
    workers = max(1, config.launch.ray_workers)
    trainer = TorchTrainer(
        _ray_train_loop, train_loop_config=to_dict(config),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=config.launch.ray_use_gpu,
                                     resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="nccl" if config.launch.ray_use_gpu else "gloo"),
        run_config=RunConfig(name="omnicurate-train", storage_path=os.path.abspath(
            config.checkpoint_dir or os.path.join(os.getcwd(), ".ray-train"))),
    )
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"Ray Train failed: {result.error}")


def launch(config: TrainConfig, launcher: str = "local", on_step: Callable | None = None):
    if launcher == "ray":
        return run_ray(config)  # rank 0 of the Ray workers prints each step itself
    return run_rank(config, on_step)
