"""Media decoding: tile counts, frame counts, and Whisper's exact log-mel computed only where there is signal."""

import numpy as np
import pytest
import torch

from training.media_decode import (MediaDecodeConfig, MediaDecodeError, decode_audio, decode_image, decode_video,
                                   mel_extractor, normalise_tiles, whisper_log_mel)


@pytest.mark.parametrize("samples", [1, 100, 16_000, 20_800, 16_000 * 29 + 5, 480_000])
def test_log_mel_equals_whisper_feature_extractor(samples):
    wave = (np.random.default_rng(samples).standard_normal(samples) * 0.1).astype(np.float32)
    reference = mel_extractor(128, 30)([wave], sampling_rate=16000, padding="max_length",
                                       return_tensors="np").input_features[0]
    assert np.abs(whisper_log_mel(wave, 128, 30).numpy() - reference).max() < 1e-5


@pytest.mark.parametrize("tiles", [1, 3, 5, 7])
def test_image_gives_the_recorded_tile_count(media_bytes, tiles):
    out = decode_image(media_bytes["jpg"], tiles, MediaDecodeConfig())
    assert out.tiles.shape == (tiles, 3, 448, 448) and out.tiles.dtype == torch.uint8
    red = normalise_tiles(out.tiles)[:, 0].mean()
    assert red > 1.0  # the test image is red: well above the ImageNet mean after normalisation


@pytest.mark.parametrize("size,tiles", [((448, 448), 1), ((1792, 448), 5), ((212, 474), 11)])
def test_without_a_record_the_image_gets_the_dynamic_tiling(size, tiles):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    assert decode_image(buf.getvalue(), None, MediaDecodeConfig()).tiles.shape[0] == tiles  # 4x1, 2x5 + thumbnail


def test_video_frames_and_long_audio_windows(media_bytes):
    cfg = MediaDecodeConfig(audio_chunk_seconds=1)
    assert decode_video(media_bytes["mp4"], 4, cfg).tiles.shape == (4, 3, 448, 448)
    audio = decode_audio(media_bytes["flac"], cfg)
    assert audio.mels.shape == (2, 128, 100)  # 1.3 s in 1 s windows


def test_undecodable_bytes_raise_a_skip_error():
    with pytest.raises(MediaDecodeError):
        decode_image(b"junk", 1, MediaDecodeConfig())
    with pytest.raises(MediaDecodeError):
        decode_audio(b"junk", MediaDecodeConfig())


@pytest.mark.parametrize("size,tiles,grid", [((600, 300), 3, (2, 1)), ((300, 900), 4, (1, 3)), ((1000, 1000), 5, (2, 2)),
                                            ((212, 474), 11, (2, 5)), ((90, 60), 1, None)])
def test_image_tiles_are_the_grid_cells_in_row_order_then_the_whole_image(size, tiles, grid):
    import io

    from PIL import Image

    img = Image.fromarray(np.random.default_rng(tiles).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    got = decode_image(buf.getvalue(), tiles, MediaDecodeConfig()).tiles
    crops = []
    if tiles > 1:
        cols, rows = grid
        resized = img.resize((cols * 448, rows * 448), Image.BICUBIC)
        crops = [resized.crop((c * 448, r * 448, (c + 1) * 448, (r + 1) * 448)) for r in range(rows) for c in range(cols)]
    crops.append(img.resize((448, 448), Image.BICUBIC))
    want = torch.from_numpy(np.stack([np.asarray(c) for c in crops])).permute(0, 3, 1, 2)
    assert got.is_contiguous() and torch.equal(got, want)


def test_video_tiles_are_decords_frames_channels_first(media_bytes):
    import io

    import decord

    got = decode_video(media_bytes["mp4"], 3, MediaDecodeConfig()).tiles
    reader = decord.VideoReader(io.BytesIO(media_bytes["mp4"]), width=448, height=448, num_threads=1)
    count = len(reader)
    frames = reader.get_batch([min(count - 1, int((i + 0.5) * count / 3)) for i in range(3)]).asnumpy()
    assert got.is_contiguous() and torch.equal(got, torch.from_numpy(frames).permute(0, 3, 1, 2))
