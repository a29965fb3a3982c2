"""Loader throughput per core vs bare webdataset iteration doing the same decoding, and raw tar reading as the limit.

Writes a small dataset of real media (jpg 3 tiles, 1 s H.264 video 3 frames, 1.3 s flac) to a temp dir, then
times, in one process with one thread:
  raw      sequential read of the tar bytes (the I/O limit);
  stock    upstream webdataset iteration + json parse + the same decoding done with what a trainer gets off the
           shelf: transformers' InternVL image processor (the recorded tile grid plus thumbnail, ImageNet-normalised
           float32), decord frames through the same processor, WhisperFeatureExtractor on the 30 s window. The
           same tensors (shape for shape) the loader makes, by the usual route;
  bare     upstream webdataset iteration + json parse + omnicurate's own decoders (training.media_decode: tiles,
           frames with the video's sound track as the loader takes it, log-mel), its output dropped at once
           ("dropped") or kept until a batch is complete, as ``.batched()`` would hand it on ("held"). It shares the
           loader's decoding, so loader / bare is the price of the loader's own work;
  loader   training.loader end to end: the same decoding + chat template, placeholders, labels, packing, batches.
"Per core" is per CPU-second of this process (all its threads), which other jobs on the machine move less than
wall time. One long-lived loader reads one untimed warm-up epoch and then ``--rounds`` timed ones; each batch it
makes is followed by as many samples of each bare pipeline (each also one long-lived iterator with the same warm-up
epoch), so load changes hit all alike. The last two lines are the ratios loader / stock (the issue's
target, >= 1.0) and loader / bare ("dropped", the strictest: what the loader's own work costs), in samples per
CPU-second over all epochs.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from schemas.config import ShardConfig  # noqa: E402
from schemas.dataset_format import SCHEMA_VERSION, SHARDS_DIR  # noqa: E402
from schemas.dialogue import (ContentPart, CuratedSample, Dialogue, Lineage, MediaItem, Message, Sample,  # noqa: E402
                              SourceSpan, TokenEstimate, Turn)
from schemas.validation import from_json  # noqa: E402


def make_media(folder: Path) -> dict[str, str]:
    """The three media files every sample shows (member suffix -> path)."""
    from PIL import Image

    folder.mkdir()
    Image.new("RGB", (600, 300), (40, 120, 200)).save(folder / "i.jpg", "JPEG", quality=90)
    run = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*run, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(folder / "v.mp4")], check=True)
    subprocess.run([*run, "-f", "lavfi", "-i", "sine=frequency=440:duration=1.3:sample_rate=16000",
                    str(folder / "a.flac")], check=True)
    return {"m00.jpg": str(folder / "i.jpg"), "m01.mp4": str(folder / "v.mp4"), "m02.flac": str(folder / "a.flac")}


def make_sample(i: int) -> Sample:
    def msg(role, text, media=None):
        parts = [ContentPart(kind=media[0], member=media[1])] if media else []
        return Message(role=role, parts=[*parts, ContentPart(kind="text", text=text)])

    media = [("image", "m00.jpg"), ("video", "m01.mp4"), ("audio", "m02.flac")]
    turns = [Turn(index=t, question_type="current_media",
                  user=msg("user", f"Turn {t} of dialogue {i}: what does this show, in a few words?", media[t]),
                  assistant=msg("assistant", f"It shows item {t} of dialogue {i}, a test pattern with colours."))
             for t in range(3)]
    items = [MediaItem(member="m00.jpg", clip_id="a", kind="image", source_uri="/a", start_s=0, end_s=0, turn=0,
                       tiles=3),
             MediaItem(member="m01.mp4", clip_id="b", kind="video", source_uri="/b", start_s=0, end_s=1, turn=1,
                       tiles=3),
             MediaItem(member="m02.flac", clip_id="c", kind="audio", source_uri="/c", start_s=0, end_s=1.3, turn=2)]
    return Sample(key=f"b{i:05d}", schema_version=SCHEMA_VERSION,
                  dialogue=Dialogue(dialogue_id=f"d{i}", turns=turns, media=items),
                  lineage=Lineage(sources=[SourceSpan(uri="/a", sha256="ab" * 32, start_s=0, end_s=0)],
                                  operators={"bench": "1"}),
                  tokens=TokenEstimate(text=0, image=0, video=0, audio=0))


def write_dataset(root: Path, n: int, per_shard: int) -> tuple[Path, list[str]]:
    """A committed dataset written by the curation pipeline's own writer: its directory and shard paths."""
    from pipelines.dataset.writer import write_dataset as write

    files = make_media(root / "media")
    dataset = root / "dataset"
    manifest = write(dataset, (CuratedSample(sample=make_sample(i), files=files) for i in range(n)), [],
                     shard=ShardConfig(max_samples=per_shard))
    return dataset, [str(dataset / SHARDS_DIR / e.name) for e in manifest.shards]


class Clock:
    """CPU seconds of this process (the per-core figure) and wall seconds of one timed run."""

    def __enter__(self) -> "Clock":
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.cpu, self.wall = time.process_time() - self._cpu, time.perf_counter() - self._wall


def time_raw(urls: list[str]) -> tuple[Clock, int]:
    total = 0
    with Clock() as clock:
        for url in urls:
            with open(url, "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return clock, total


def shown_media(sample: Sample) -> list[tuple[str, str, int | None]]:
    """(member, kind, recorded tiles or frames) of every medium the loader decodes for a sample, once each."""
    from training.loader import shown_media as members

    tiles = {m.member: m.tiles for m in sample.dialogue.media}
    return [(member, kind, tiles.get(member)) for member, kind in members(sample).items()]


def decoded_samples(urls: list[str], decoders: dict) -> Iterator[dict]:
    """Upstream webdataset iteration; per sample: parse the record, decode exactly the media the loader decodes
    with ``decoders`` (kind -> (bytes, recorded tiles or frames) -> decoded)."""
    import webdataset as wds

    for raw in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        yield {member: decoders[kind](raw[member], tiles)
               for member, kind, tiles in shown_media(from_json(Sample, raw["json"]))}


def bare_samples(urls: list[str], cfg) -> Iterator[dict]:
    """Decoded by the loader's own decoders."""
    from training.media_decode import decode_audio, decode_image, decode_video

    return decoded_samples(urls, {"image": lambda data, tiles: decode_image(data, tiles, cfg),
                                  "video": lambda data, frames: decode_video(data, frames, cfg, with_audio=True),
                                  "audio": lambda data, _: decode_audio(data, cfg)})


class StockDecoders:
    """The same media decoding a trainer writes with upstream parts: transformers' InternVL image processor for
    images and video frames, decord at the file's own size, WhisperFeatureExtractor for sound."""

    def __init__(self, cfg):
        from transformers import GotOcr2ImageProcessorPil

        from training.media_decode import IMAGENET_MEAN, IMAGENET_STD, mel_extractor

        size = {"height": cfg.tile_size, "width": cfg.tile_size}
        self.images = GotOcr2ImageProcessorPil(crop_to_patches=True, size=size, image_mean=IMAGENET_MEAN,
                                               image_std=IMAGENET_STD)
        self.frames = GotOcr2ImageProcessorPil(crop_to_patches=False, size=size, image_mean=IMAGENET_MEAN,
                                               image_std=IMAGENET_STD)
        self.whisper = mel_extractor(cfg.mel_bins, cfg.audio_chunk_seconds)
        self.max_tiles, self.frames_per_clip = cfg.max_tiles, cfg.frames_per_clip

    def image(self, data: bytes, tiles: int | None) -> torch.Tensor:
        """The recorded grid (the processor adds the thumbnail when it has > 1 cell), else its own choice."""
        from PIL import Image

        cells = (1, self.max_tiles) if tiles is None else (max(1, tiles - 1),) * 2
        with Image.open(io.BytesIO(data)) as img:
            return self.images(images=img.convert("RGB"), min_patches=cells[0], max_patches=cells[1],
                               return_tensors="pt")["pixel_values"]

    def video(self, data: bytes, frames: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        import decord
        from PIL import Image

        from training.media_decode import MediaDecodeError, decode_waveform, frame_indices

        reader = decord.VideoReader(io.BytesIO(data), num_threads=1)
        picked = reader.get_batch(frame_indices(len(reader), frames or self.frames_per_clip)).asnumpy()
        pixels = self.frames(images=[Image.fromarray(f) for f in picked], return_tensors="pt")["pixel_values"]
        try:
            sound = self.mels(decode_waveform(data))
        except MediaDecodeError:
            sound = None  # a silent video
        return pixels, sound

    def audio(self, data: bytes) -> torch.Tensor:
        from training.media_decode import decode_waveform

        return self.mels(decode_waveform(data))

    def mels(self, wave) -> torch.Tensor:
        from training.media_decode import SAMPLE_RATE

        step = self.whisper.chunk_length * SAMPLE_RATE
        chunks = [wave[s:s + step] for s in range(0, max(len(wave), 1), step)]
        return self.whisper(chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"]


def stock_samples(urls: list[str], stock: StockDecoders) -> Iterator[dict]:
    """Decoded the off-the-shelf way: (tiles, sound track or None) per image or video, mels per audio."""
    return decoded_samples(urls, {"image": lambda data, tiles: (stock.image(data, tiles), None),
                                  "video": stock.video, "audio": lambda data, _: stock.audio(data)})


def same_shapes(ours: dict, stock: dict) -> None:
    """Stock decoding makes the tensors the loader's decoders make, shape for shape (else the race is unfair)."""
    from training.media_decode import DecodedAudio, DecodedVisual

    def shapes(value):
        if isinstance(value, DecodedVisual):
            value = (value.tiles, value.audio)
        elif isinstance(value, DecodedAudio):
            value = value.mels
        if isinstance(value, tuple):
            return tuple(shapes(v) for v in value)
        return None if value is None else tuple(value.shape)

    mine, theirs = {k: shapes(v) for k, v in ours.items()}, {k: shapes(v) for k, v in stock.items()}
    assert mine == theirs, f"the loader's decoders make {mine}, stock decoding {theirs}"


def loader_batches(root: Path, tokenizer, cfg, epochs: int = 1, max_tokens: int = 8192) -> Iterator:
    from training.loader import DataSource, LoaderConfig, ShardDataset

    config = LoaderConfig(sources=[DataSource(url=str(root))], max_tokens=max_tokens, shuffle_buffer=16,
                          epochs=epochs, media=cfg)
    yield from ShardDataset(config, tokenizer)


@dataclass
class Epoch:
    cpu: dict[str, float]
    wall: dict[str, float]
    samples: int = 0
    tokens: int = 0


def race(urls: list[str], root: Path, tokenizer, cfg, stock: StockDecoders, epochs: int, max_tokens: int
         ) -> list[Epoch]:
    """A warm-up epoch and ``epochs`` timed passes of each contender (one long-lived loader, as in training; its
    first batches fill its buffers, as once per run in training), interleaved: the loader makes a batch, then each
    bare pipeline as many samples, each one's time summed per epoch; so a change of machine load hits all alike.

    ``dropped``: bare webdataset whose decoded media are dropped at once (its buffers stay in cache);
    ``held``: the same, its decoded media kept until the batch is complete, as ``.batched()`` hands them on;
    ``stock``: bare webdataset decoding the off-the-shelf way, its media dropped at once.
    """
    passes = epochs + 1
    out = [Epoch(cpu=dict.fromkeys(CONTENDERS, 0.0), wall=dict.fromkeys(CONTENDERS, 0.0)) for _ in range(passes)]
    dropped, held = bare_samples(urls * passes, cfg), bare_samples(urls * passes, cfg)
    stocked = stock_samples(urls * passes, stock)
    loader = loader_batches(root, tokenizer, cfg, passes, max_tokens)

    def timed(epoch: Epoch, name: str, step, clock: Clock | None = None):
        if clock is None:
            with Clock() as clock:
                result = step()
        epoch.cpu[name] += clock.cpu
        epoch.wall[name] += clock.wall
        return None if step is None else result

    while True:
        with Clock() as clock:
            batch = next(loader, None)
        epoch = out[batch.epoch if batch is not None else -1]
        timed(epoch, "loader", None, clock)
        if batch is None:
            break
        n = len(batch.sample_ids)
        epoch.samples, epoch.tokens = epoch.samples + n, epoch.tokens + batch.tokens
        del batch
        timed(epoch, "dropped", lambda: [next(dropped) and None for _ in range(n)])
        timed(epoch, "held", lambda: [next(held) for _ in range(n)])
        timed(epoch, "stock", lambda: [next(stocked) and None for _ in range(n)])
    left = sum(timed(epoch, name, lambda: sum(1 for _ in rest))
               for name, rest in (("dropped", dropped), ("held", held), ("stock", stocked)))
    assert left == 0, f"bare webdataset read {left} samples more than the loader delivered"
    return out[1:]  # the warm-up epoch is not counted


CONTENDERS = ("loader", "dropped", "held", "stock")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--per-shard", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=4, help="timed epochs of each contender, interleaved")
    parser.add_argument("--dataset", help="race over this local dataset (e.g. make demo's demo-out/dataset) instead "
                                          "of a written one")
    parser.add_argument("--max-tokens", type=int, default=8192, help="the loader's row length")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from training.media_decode import MediaDecodeConfig
    from training.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    cfg = MediaDecodeConfig()
    stock = StockDecoders(cfg)
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        if args.dataset:
            from pipelines.dataset.manifest import read_manifest
            from training.shard_urls import expand_shard_urls

            root, urls = Path(args.dataset), expand_shard_urls(args.dataset)
            n = read_manifest(args.dataset).counts["samples"]
        else:
            (root, urls), n = write_dataset(Path(tmp), args.samples, args.per_shard), args.samples
        for ours, theirs in zip(bare_samples(urls[:1], cfg), stock_samples(urls[:1], stock), strict=True):
            same_shapes(ours, theirs)
        raw, raw_bytes = time_raw(urls)
        races = race(urls, root, tokenizer, cfg, stock, args.rounds, args.max_tokens)
    if not all(r.samples == n for r in races):
        raise SystemExit(f"the loader delivered {[r.samples for r in races]} of {n} samples per epoch (skipped as "
                         "longer than --max-tokens?): the race would be unfair")
    cpu = {k: sum(r.cpu[k] for r in races) for k in CONTENDERS}
    wall = {k: sum(r.wall[k] for r in races) for k in CONTENDERS}
    total, tokens = n * len(races), sum(r.tokens for r in races)
    print(f"samples: {n}, shards: {len(urls)}, one process, one thread, a warm-up epoch and {args.rounds} timed ones, "
          "interleaved")
    print(f"raw tar read:  {raw_bytes / raw.wall / 1e6:10.1f} MB/s  {n / raw.wall:10.1f} samples/s (the I/O limit)")
    print(f"stock wds:               {total / cpu['stock']:7.2f} samples/s per core ({total / wall['stock']:.2f}/s "
          f"wall; iteration + the same decoding with transformers' processors, decord, WhisperFeatureExtractor)")
    print(f"bare wds, media dropped: {total / cpu['dropped']:7.2f} samples/s per core ({total / wall['dropped']:.2f}/s "
          f"wall; iteration + same media decoding, each sample's media freed at once)")
    print(f"bare wds, batch held:    {total / cpu['held']:7.2f} samples/s per core ({total / wall['held']:.2f}/s "
          f"wall; the same, media kept until the loader's batch size is reached)")
    print(f"loader:                  {total / cpu['loader']:7.2f} samples/s {tokens / cpu['loader']:8.0f} tokens/s "
          f"per core ({total / wall['loader']:.2f}/s wall; decode + chat template + placeholders + labels + packing"
          f" + batches)")
    print(f"raw read / loader: {wall['loader'] / len(races) / raw.wall:.0f}x (decoding, not I/O, bounds the loader)")
    for k in ("stock", "dropped", "held"):
        rounds = " ".join(f"{r.cpu[k] / r.cpu['loader']:.3f}" for r in races)
        print(f"loader / bare ({k}), per epoch: {rounds}; "
              f"all epochs: {cpu[k] / cpu['loader']:.3f} CPU, {wall[k] / wall['loader']:.3f} wall")
    print(f"loader / stock webdataset decoding (samples per CPU-second; target >= 1.0): "
          f"{cpu['stock'] / cpu['loader']:.3f}")
    print(f"loader / bare webdataset with the loader's own decoders (its own work's price): "
          f"{cpu['dropped'] / cpu['loader']:.3f}")


if __name__ == "__main__":
    main()
