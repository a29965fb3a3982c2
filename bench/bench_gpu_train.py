"""Training throughput of the full-size omni model on one CUDA GPU: tokens/s and MFU, random weights.

Full size: InternViT-300M vision encoder, Whisper-large-v3 encoder, Qwen3-4B (``--llm 1.7b`` / ``0.6b`` where
4B does not fit). bf16 weights and AdamW, activation checkpointing on the LLM, packed rows with per-sample
attention boundaries, images, video frames and audio in every row. The baseline measured in the same run is
the GPU's own bf16 matmul rate; the last line is model FLOP/s over that rate.

Without a CUDA device it says so and exits 0 (``--smoke`` runs the same code with the tiny model on CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

LLM_SIZES = {
    "4b": dict(hidden_size=2560, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate_size=9728),
    "1.7b": dict(hidden_size=2048, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate_size=6144),
    "0.6b": dict(hidden_size=1024, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate_size=3072),
}
SPEC_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def model_config(llm: str, tiny: bool):
    from training.model.config import LLMConfig, full_model_config, tiny_model_config

    if tiny:
        return tiny_model_config(vocab_size=151_680)
    full = full_model_config()
    return replace(full, speech=None, llm=LLMConfig(**LLM_SIZES[llm], vocab_size=151_936))


def synthetic_batch(special, seq_len: int, samples: int, tiles: int, audio_seconds: int, chunk_seconds: int,
                    tile_size: int, device):
    """One packed row of ``samples`` dialogues, each with ``tiles`` image tiles and an audio clip."""
    from training.packing import Batch

    per = seq_len // samples
    img = tiles * 64
    aud = audio_seconds * 25
    text = per - img - aud - 4
    if text < 16:
        raise SystemExit(f"--seq-len {seq_len} too short for {samples} samples of {tiles} tiles + {audio_seconds}s audio")
    ids, labels, pos = [], [], []
    g = torch.Generator().manual_seed(0)
    for _ in range(samples):
        body = torch.randint(0, 150_000, (text,), generator=g).tolist()
        row = [special.img_start] + [special.img_context] * img + [special.img_end] + \
              [special.audio_start] + [special.audio_context] * aud + [special.audio_end] + body
        ids += row
        labels += [-100] * (len(row) - text // 2) + body[-(text // 2):]
        pos += list(range(len(row)))
    t = lambda x: torch.tensor([x], dtype=torch.long, device=device)  # noqa: E731
    windows = -(-audio_seconds // chunk_seconds)
    return Batch(input_ids=t(ids), labels=t(labels), position_ids=t(pos),
                 pixel_values=torch.randint(0, 256, (samples * tiles, 3, tile_size, tile_size), dtype=torch.uint8,
                                            device=device),
                 audio_mels=torch.randn(samples * windows, 128, chunk_seconds * 100, device=device),
                 audio_windows=[windows] * samples, audio_tokens=[aud] * samples, sample_ids=[])


def train_flops(model, batch, samples: int, seq_per_sample: int) -> dict[str, float]:
    """Useful model FLOPs of one optimizer step (forward + backward, no recomputation), by part.

    A weight matmul (or convolution) costs 6 x its weights per token it sees (2 forward, 4 backward); attention
    12 x layers x width x tokens^2 per sequence (bidirectional encoders) and half that under the LLM's causal mask,
    each packed sample its own sequence. The LM head runs on the labelled positions only (the loss never forms
    other logits); the projectors on the tokens they hand to the LLM.
    """
    cfg = model.config
    tiles = batch.pixel_values.shape[0]
    windows = batch.audio_mels.shape[0]

    def params(module):
        """Weights that multiply activations (Linear, convolutions); not norms, biases or position tables."""
        kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, kinds))

    llm = model.llm.config
    tokens = batch.input_ids.numel()
    labelled = int((batch.labels != -100).sum())
    d_attn = cfg.llm.heads * cfg.llm.head_dim
    v = model.vision.encoder.config
    patches = (cfg.vision.tile_size // cfg.vision.patch_size) ** 2 + 1
    a = model.audio.encoder.config
    frames = a.max_source_positions
    vision_tokens = int((batch.input_ids == model.img_context_id).sum())
    return {
        "llm": 6 * params(model.llm.model.layers) * tokens,
        "llm attention": 6 * cfg.llm.layers * d_attn * samples * seq_per_sample ** 2,
        "lm head": 6 * llm.hidden_size * llm.vocab_size * labelled,
        "vision": 6 * params(model.vision.encoder) * tiles * patches
        + 6 * params(model.vision.projector) * vision_tokens,
        "vision attention": 12 * v.num_hidden_layers * v.hidden_size * tiles * patches ** 2,
        "audio": 6 * params(model.audio.encoder) * windows * frames
        + 6 * params(model.audio.encoder.conv1) * windows * frames  # the first conv runs on 2 x frames mel frames
        + 6 * params(model.audio.projector) * sum(batch.audio_tokens),
        "audio attention": 12 * a.encoder_layers * a.d_model * windows * frames ** 2,
    }


def matmul_rate(device, dtype, size: int = 8192, reps: int = 20) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * size ** 3 * reps / (time.perf_counter() - start)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--llm", choices=list(LLM_SIZES), default="4b")
    parser.add_argument("--seq-len", type=int, default=16384, help="packed row length")
    parser.add_argument("--samples", type=int, default=4, help="dialogues packed in the row")
    parser.add_argument("--tiles", type=int, default=8, help="image tiles / video frames per dialogue")
    parser.add_argument("--audio-seconds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--no-checkpointing", action="store_true", help="no activation checkpointing")
    parser.add_argument("--attn", default="sdpa", help="sdpa or flash_attention_2 (packed rows via position ids)")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the script, not a figure")
    args = parser.parse_args()

    if not torch.cuda.is_available() and not args.smoke:
        print("bench_gpu_train: no CUDA device here; run it on a GPU node (or --smoke for a CPU check of the script)")
        print("no CUDA device: skipped")
        return 0
    from training.model.omni import OmniModel
    from training.tokenizer import SpecialIds, load_tokenizer

    device = torch.device("cpu" if args.smoke else "cuda")
    dtype = torch.float32 if args.smoke else torch.bfloat16
    if args.smoke:
        args.seq_len, args.samples, args.tiles, args.audio_seconds, args.steps = 2048, 2, 2, 2, 2
    special = SpecialIds.of(load_tokenizer())
    config = model_config(args.llm, tiny=args.smoke)
    torch.manual_seed(0)
    with torch.device(device):
        model = OmniModel(config, special.img_context, special.audio_context, attn_implementation=args.attn)
    model = model.to(dtype)
    if not args.no_checkpointing and not args.smoke:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    batch = synthetic_batch(special, args.seq_len, args.samples, args.tiles, args.audio_seconds,
                            config.audio.chunk_seconds, config.vision.tile_size, device)
    batch.audio_mels = batch.audio_mels.to(dtype)

    def step() -> float:
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    tokens = batch.input_ids.numel()
    parts = train_flops(model, batch, args.samples, args.seq_len // args.samples)
    flops = sum(parts.values())
    achieved = flops / seconds
    measured_peak = matmul_rate(device, dtype, size=1024 if args.smoke else 8192)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    spec = next((v for k, v in SPEC_BF16_TFLOPS.items() if k in name), None)
    params = sum(p.numel() for p in model.parameters())
    print(f"device: {name}; model: {params / 1e9:.2f} B params (LLM {args.llm if not args.smoke else 'tiny'}), "
          f"{dtype}, activation checkpointing {not args.no_checkpointing and not args.smoke}, attention {args.attn}")
    print(f"row: {tokens} tokens, {args.samples} samples, {batch.pixel_values.shape[0]} tiles, "
          f"{batch.audio_mels.shape[0]} audio windows; loss {loss:.3f}")
    print(f"step: {seconds * 1000:.0f} ms; {tokens / seconds:,.0f} tokens/s; model {achieved / 1e12:.1f} TFLOP/s "
          f"({', '.join(f'{k} {v / flops:.0%}' for k, v in parts.items())} of {flops / 1e12:.1f} TFLOP a step)")
    if spec:
        print(f"MFU vs spec bf16 dense peak ({spec:.0f} TFLOP/s): {achieved / (spec * 1e12):.3f}")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"measured {dtype} matmul rate (baseline): {measured_peak / 1e12:.1f} TFLOP/s")
    print(f"model FLOP/s / measured matmul rate: {achieved / measured_peak:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
