"""The ONNX speech tokenizer path: a tiny CosyVoice2-shaped graph made here gives the speech stage its targets."""

import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch

from schemas.validation import from_dict, to_dict
from training.config import TrainConfig
from training.loader import ShardDataset
from training.media_decode import decode_waveform
from training.model.speech_decoder import OnnxSpeechTokenizer, build_speech_tokenizer
from training.stages import STAGES, apply_stage

VOCAB = 64  # the tiny speech decoder's codebook
MELS = 128
STRIDE = 4  # 100 mel frames/s -> 25 tokens/s, as CosyVoice2


def tokenizer_graph(path, weight, *, length_input=True, offset=0, float_out=False):
    """feats [1, MELS, frames] -> argmax over units of every STRIDE-th frame's projection (+ offset)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ints = {name: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
            for name, v in {"starts": [0], "ends": [2 ** 62], "axes": [1], "steps": [STRIDE], "offset": offset}.items()}
    nodes = [helper.make_node("Transpose", ["feats"], ["by_frame"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["by_frame", "W"], ["logits"]),
             helper.make_node("Slice", ["logits", "starts", "ends", "axes", "steps"], ["strided"]),
             helper.make_node("ArgMax", ["strided"], ["units"], axis=2, keepdims=0),
             helper.make_node("Add", ["units", "offset"], ["tokens"])]
    out_type = TensorProto.INT64
    if float_out:
        nodes.append(helper.make_node("Cast", ["tokens"], ["tokens_f"], to=TensorProto.FLOAT))
        out_type = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, MELS, "frames"])]
    if length_input:
        inputs.append(helper.make_tensor_value_info("feats_length", TensorProto.INT32, [1]))
    outputs = [helper.make_tensor_value_info("tokens_f" if float_out else "tokens", out_type, [1, "n"])]
    graph = helper.make_graph(nodes, "speech_tokenizer", inputs, outputs,
                              [numpy_helper.from_array(weight, "W"), *ints.values()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def whisper_log_mel(wave: np.ndarray) -> np.ndarray:
    """Reference front end: Whisper's log-mel of the unpadded utterance (torch STFT), [MELS, frames]."""
    from transformers import WhisperFeatureExtractor

    filters = torch.from_numpy(WhisperFeatureExtractor(feature_size=MELS).mel_filters).double()  # [201, MELS]
    spec = torch.stft(torch.from_numpy(wave).double(), 400, 160, window=torch.hann_window(400, dtype=torch.float64),
                      return_complex=True)
    log = (filters.T @ spec[:, :-1].abs() ** 2).clamp(min=1e-10).log10()
    return ((torch.maximum(log, log.max() - 8.0) + 4.0) / 4.0).numpy()


def reference_tokens(wave: np.ndarray, weight: np.ndarray) -> list[int]:
    return (whisper_log_mel(wave).T @ weight)[::STRIDE].argmax(axis=1).tolist()


@pytest.fixture(scope="module")
def weight():
    return np.random.default_rng(7).standard_normal((MELS, VOCAB)).astype(np.float32)


@pytest.fixture(scope="module")
def speech_flac(tmp_path_factory) -> bytes:
    """1.2 s of a sweep whose spectrum changes every frame (a steady tone would give one token throughout)."""
    path = tmp_path_factory.mktemp("speech") / "sweep.flac"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "aevalsrc='0.5*sin(2*PI*(150+900*t)*t)+0.3*sin(2*PI*2500*t*t*t)':s=22050:d=1.2",
                    str(path)], check=True)
    return path.read_bytes()


def test_encode_gives_the_tokens_the_graph_computes(tmp_path, weight, speech_flac):
    wave = decode_waveform(speech_flac)
    model_dir = tmp_path / "cosyvoice2"
    model_dir.mkdir()
    tokenizer_graph(model_dir / "speech_tokenizer_v2.onnx", weight)
    for path in (model_dir, model_dir / "speech_tokenizer_v2.onnx"):  # a model directory or the file
        tokens = OnnxSpeechTokenizer(str(path), VOCAB).encode(wave)
        assert tokens == reference_tokens(wave, weight)
    assert len(tokens) == -(-(len(wave) // 160) // STRIDE)  # 25 tokens per second
    assert len(set(tokens)) > 5


def test_token_ids_outside_the_vocabulary_are_refused(tmp_path, weight, speech_flac):
    path = tokenizer_graph(tmp_path / "big.onnx", weight, offset=VOCAB - 3)
    with pytest.raises(ValueError, match=r"outside the configured vocabulary \[0, 64\)"):
        OnnxSpeechTokenizer(path, VOCAB).encode(decode_waveform(speech_flac))


@pytest.mark.parametrize("shape", ["no_length_input", "float_output"])
def test_a_model_of_another_shape_is_refused_when_loaded(tmp_path, weight, shape):
    path = tokenizer_graph(tmp_path / "odd.onnx", weight, length_input=shape != "no_length_input",
                           float_out=shape == "float_output")
    with pytest.raises(ValueError, match="odd.onnx is not a speech tokenizer: expected inputs"):
        OnnxSpeechTokenizer(path, VOCAB)


def test_a_missing_tokenizer_path_is_named(tmp_path):
    from training.model.config import SpeechDecoderConfig

    with pytest.raises(FileNotFoundError, match="nowhere.onnx does not exist"):
        build_speech_tokenizer(SpeechDecoderConfig(tokenizer=str(tmp_path / "nowhere.onnx"), speech_vocab=VOCAB))


def test_speech_stage_trains_on_the_onnx_tokens(tmp_path, weight, speech_flac, media_bytes, tokenizer):
    from conftest import make_sample, write_dataset

    from training.losses import stage_loss
    from training.trainer import build_model

    sample = make_sample(0, turns=3, with_media=False)  # its first answer is spoken (t00.assistant.flac)
    data = write_dataset(tmp_path / "ds", [sample], media_bytes, 1, extra={sample.key: {"t00.assistant.flac":
                                                                                          speech_flac}})
    onnx_path = tokenizer_graph(tmp_path / "tok.onnx", weight)
    preset = from_dict(TrainConfig, {"stage": "speech", "data": {"sources": [{"url": str(data)}],
                                                                 "max_tokens": 4096, "shuffle_buffer": 0}})
    model_config = preset.model_config(len(tokenizer))
    model_config = replace(model_config, speech=replace(model_config.speech, tokenizer=onnx_path))
    config = from_dict(TrainConfig, {**to_dict(preset), "model": to_dict(model_config)})  # as a YAML would give it
    assert config.model.speech.tokenizer == onnx_path

    model, built = build_model(config, tokenizer, torch.device("cpu"))
    apply_stage(model, STAGES["speech"])
    batch = next(iter(ShardDataset(config.loader_config(built), tokenizer)))
    assert [u.tolist() for u in batch.speech_units] == [reference_tokens(decode_waveform(speech_flac), weight)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(5):
        loss, tokens = stage_loss("speech", model, batch)
        assert tokens == len(batch.speech_units[0]) + 1  # every speech token and the end of speech
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
