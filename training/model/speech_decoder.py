"""Streaming speech decoder: a speech-token LM over text-token embeddings fused with LLM hidden states.

Per spoken answer the input interleaves ``text_chunk`` text positions with ``speech_chunk`` speech tokens
(5:25, CosyVoice2's bistream order); once the text is used up the remaining speech follows. Each position
predicts the next speech token (or end of speech) whenever the next element is speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.model.config import SpeechDecoderConfig

IGNORE = -100
WEIGHTS_FILE = "speech_decoder.safetensors"


class UnitSpeechTokenizer:
    """A CPU speech tokenizer: 25 Hz log-mel frames quantised by a fixed seeded projection (argmax over units).

    Deterministic and weight-free; a stand-in target vocabulary for training the decoder where no
    CosyVoice2 tokenizer is configured.
    """

    def __init__(self, vocab_size: int, frame_ms: int = 40, mel_bins: int = 80, seed: int = 0):
        self.vocab_size = vocab_size
        self.hop = 16 * frame_ms
        self.mel_bins = mel_bins
        rng = np.random.default_rng(seed)
        self.codebook = rng.standard_normal((vocab_size, mel_bins)).astype(np.float32)

    def encode(self, wave16k: np.ndarray) -> list[int]:
        from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

        if len(wave16k) < self.hop:
            wave16k = np.pad(wave16k, (0, self.hop - len(wave16k)))
        filters = mel_filter_bank(num_frequency_bins=1 + 1024 // 2, num_mel_filters=self.mel_bins, min_frequency=0.0,
                                  max_frequency=8000.0, sampling_rate=16000, norm="slaney", mel_scale="slaney")
        mel = spectrogram(wave16k.astype(np.float32), window_function(1024, "hann"), frame_length=1024,
                          hop_length=self.hop, power=2.0, mel_filters=filters, log_mel="log10")  # [bins, frames]
        mel = mel[:, : max(1, len(wave16k) // self.hop)]
        mel = (mel - mel.mean(axis=1, keepdims=True)) / (mel.std(axis=1, keepdims=True) + 1e-5)
        return (self.codebook @ mel).argmax(axis=0).astype(np.int64).tolist()


ONNX_TOKENIZER_FILES = ("speech_tokenizer_v2.onnx", "speech_tokenizer_v1.onnx")


class OnnxSpeechTokenizer:
    """A local CosyVoice2-style ONNX speech tokenizer: Whisper log-mel of the utterance in, speech token ids out.

    The graph takes ``feats`` (float32 [1, mel_bins, frames], 100 frames/s, unpadded) and ``feats_length``
    (int32 [1]) and returns the token ids (25 Hz for CosyVoice2). ``path`` is the .onnx file or a model
    directory holding ``speech_tokenizer_v2.onnx``.
    """

    def __init__(self, path: str, vocab_size: int):
        import onnxruntime

        self.path = _onnx_file(path)
        self.session = onnxruntime.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        self.vocab_size = vocab_size
        self.mel_bins = self._check_signature()
        feats, length = self.session.get_inputs()
        self._feats_name, self._length_name = feats.name, length.name
        self._length_type = np.int64 if length.type == "tensor(int64)" else np.int32

    def _check_signature(self) -> int:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs) + " -> " + \
            ", ".join(f"{o.name} {o.type} {o.shape}" for o in outputs)
        ok = (len(inputs) == 2 and len(outputs) >= 1 and inputs[0].type == "tensor(float)"
              and len(inputs[0].shape) == 3 and "int" in inputs[1].type and len(inputs[1].shape) == 1
              and "int" in outputs[0].type)
        if not ok:
            raise ValueError(f"{self.path} is not a speech tokenizer: expected inputs (feats float [1, mel_bins, "
                             f"frames], feats_length int [1]) and integer token ids out, got {got}")
        mel_bins = inputs[0].shape[1]
        return mel_bins if isinstance(mel_bins, int) else 128

    def features(self, wave16k: np.ndarray) -> np.ndarray:
        """Whisper's log-mel of the whole utterance (no padding to 30 s), float32 [1, mel_bins, frames]."""
        from training.media_decode import mel_extractor

        wave = np.asarray(wave16k, dtype=np.float32)
        if len(wave) < 2 * 160:
            wave = np.pad(wave, (0, 2 * 160 - len(wave)))
        # "longest" padding ignores the chunk length: the whole utterance, unpadded
        return mel_extractor(self.mel_bins, 30)(wave, sampling_rate=16000, padding="longest",
                                                return_tensors="np").input_features.astype(np.float32)

    def encode(self, wave16k: np.ndarray) -> list[int]:
        feats = self.features(wave16k)
        out = self.session.run(None, {self._feats_name: feats,
                                      self._length_name: np.array([feats.shape[2]], dtype=self._length_type)})[0]
        tokens = np.asarray(out).reshape(-1).astype(np.int64)
        bad = tokens[(tokens < 0) | (tokens >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"{self.path} gave speech token {int(bad[0])} outside the configured vocabulary "
                             f"[0, {self.vocab_size}) (speech_vocab must match the tokenizer's codebook)")
        return tokens.tolist()


def _onnx_file(path: str) -> str:
    given = Path(path)
    if given.is_dir():
        for name in ONNX_TOKENIZER_FILES:
            if (given / name).is_file():
                return str(given / name)
        raise FileNotFoundError(f"speech tokenizer directory {path} holds none of {', '.join(ONNX_TOKENIZER_FILES)}")
    if not given.is_file():
        raise FileNotFoundError(f"speech tokenizer {path} does not exist (give 'units' or a local .onnx tokenizer)")
    return str(given)


def build_speech_tokenizer(config: SpeechDecoderConfig):
    if config.tokenizer == "units":
        return UnitSpeechTokenizer(config.speech_vocab, frame_ms=config.unit_frame_ms)
    return OnnxSpeechTokenizer(config.tokenizer, config.speech_vocab)


def interleave(text_len: int, speech: list[int], text_chunk: int, speech_chunk: int) -> list[tuple[str, int]]:
    """[('text', i) | ('speech', unit)] in bistream order: text_chunk text, speech_chunk speech, ..., rest speech."""
    out: list[tuple[str, int]] = []
    t = s = 0
    while t < text_len:
        out += [("text", i) for i in range(t, min(t + text_chunk, text_len))]
        t += text_chunk
        if t < text_len:
            out += [("speech", u) for u in speech[s:s + speech_chunk]]
            s += speech_chunk
    out += [("speech", u) for u in speech[s:]]
    return out


class SpeechDecoder(nn.Module):
    def __init__(self, config: SpeechDecoderConfig, llm_hidden: int):
        super().__init__()
        from transformers import Qwen3Config, Qwen3Model

        self.config = config
        self.eos = config.speech_vocab
        hf = Qwen3Config(vocab_size=config.speech_vocab + 1, hidden_size=config.hidden_size,
                         num_hidden_layers=config.layers, num_attention_heads=config.heads,
                         num_key_value_heads=config.heads, head_dim=config.hidden_size // config.heads,
                         intermediate_size=config.hidden_size * 4, max_position_embeddings=8192, use_cache=False)
        self.backbone = Qwen3Model(hf)  # its token embedding is the speech-token embedding
        self.text_proj = nn.Linear(llm_hidden, config.hidden_size)
        self.hidden_proj = nn.Linear(llm_hidden, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.speech_vocab + 1)
        if config.pretrained:
            from safetensors.torch import load_file

            self.load_state_dict(load_file(str(Path(config.pretrained) / WEIGHTS_FILE)))

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        Path(directory).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(directory) / WEIGHTS_FILE))

    def sequences(self, batch, hidden: torch.Tensor, text_embed: nn.Module):
        """Per spoken answer: input embeddings [L, d] and targets [L] in interleaved order."""
        embeds, targets = [], []
        speech_embed = self.backbone.get_input_embeddings()
        for (row, start, end), units in zip(batch.speech_spans, batch.speech_units):
            ids = batch.input_ids[row, start:end]
            fused = self.text_proj(text_embed(ids).detach()) + self.hidden_proj(hidden[row, start:end].detach())
            order = interleave(end - start, units.tolist(), self.config.text_chunk, self.config.speech_chunk)
            unit_ids = torch.tensor([u for kind, u in order if kind == "speech"], dtype=torch.long, device=ids.device)
            speech_vecs = speech_embed(unit_ids)
            rows, s = [], 0
            for kind, value in order:
                if kind == "text":
                    rows.append(fused[value])
                else:
                    rows.append(speech_vecs[s])
                    s += 1
            nxt = [u if kind == "speech" else IGNORE for kind, u in order[1:]] + [self.eos]
            embeds.append(torch.stack(rows))
            targets.append(torch.tensor(nxt, dtype=torch.long, device=ids.device))
        return embeds, targets

    def loss(self, batch, hidden: torch.Tensor, text_embed: nn.Module):
        from training.model.omni import OmniOutput

        if not batch.speech_units:
            raise ValueError("the batch has no spoken answers (speech stage needs assistant speech members)")
        embeds, targets = self.sequences(batch, hidden, text_embed)
        length = max(e.shape[0] for e in embeds)
        d = embeds[0].shape[-1]
        x = embeds[0].new_zeros((len(embeds), length, d))
        y = torch.full((len(embeds), length), IGNORE, dtype=torch.long, device=x.device)
        mask = torch.zeros((len(embeds), length), dtype=torch.long, device=x.device)
        for i, (e, t) in enumerate(zip(embeds, targets)):
            x[i, :e.shape[0]], y[i, :t.shape[0]], mask[i, :e.shape[0]] = e, t, 1
        out = self.backbone(inputs_embeds=x, attention_mask=mask, use_cache=False).last_hidden_state
        logits = self.head(out).float()
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
        return OmniOutput(loss=loss, tokens=int((y != IGNORE).sum()))
