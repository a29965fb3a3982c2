"""Render a dialogue with the Qwen chat template into token ids, expanded media placeholders and masked labels."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Literal

import torch

from schemas.dialogue import Message, Sample
from schemas.token_accounting import TokenAccounting
from training.media_decode import DecodedAudio, DecodedVisual
from training.tokenizer import SpecialIds

IGNORE = -100
LabelMode = Literal["assistant", "final_turn"]


@dataclass(kw_only=True, slots=True, frozen=True)
class RenderConfig:
    """How a dialogue becomes a token sequence."""

    label_mode: LabelMode = "assistant"
    """Train on every assistant answer, or on the final turn's answer only (DPO, evaluation)."""
    system_prompt: str | None = None
    """A system message put first, when set."""
    spoken_user: bool = False
    """Give a user turn that was spoken (``t03.user.flac``) to the model as audio instead of its text."""


@dataclass(slots=True)
class RenderedSample:
    """One dialogue ready for the model: ids, labels and the media in placeholder order."""

    key: str
    input_ids: list[int]
    labels: list[int]
    visuals: list[torch.Tensor] = field(default_factory=list)
    """Per image or video, [tiles, 3, H, W], in the order of their ``<img>`` spans."""
    audios: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    """Per audio clip: (mel windows, context tokens), in the order of their ``<audio>`` spans."""
    assistant_turns: list[tuple[int, int]] = field(default_factory=list)
    """[start, end) of each assistant answer's ids (content and ``<|im_end|>``)."""
    speech: list[tuple[int, int, list[int]]] = field(default_factory=list)
    """(start, end, speech units) of each spoken answer's text ids: the speech decoder's input and targets."""

    def __len__(self) -> int:
        return len(self.input_ids)


SHORT_TEXT = 24
"""Texts up to this length (role headers, separators) are encoded once per tokenizer and remembered."""
SHORT_TEXT_ENTRIES = 4096


_TEXT_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Tokenizer -> its encoder, kept beside it (not on it: the tokenizer must stay picklable for spawned workers)."""


def text_encoder(tokenizer):
    """str -> ids with control tokens spelled in the text split as plain text, so data can never inject one.

    Calls the Rust tokenizer directly: the transformers wrapper costs more than the encoding for short turns.
    The template's own short strings recur in every message, so short texts are looked up by their exact value.
    """
    encode = _TEXT_ENCODERS.get(tokenizer)
    if encode is None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            def encode_any(text):
                return tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
        else:
            from tokenizers import Tokenizer

            plain = Tokenizer.from_str(backend.to_str())
            plain.encode_special_tokens = True

            def encode_any(text):
                return plain.encode(text, add_special_tokens=False).ids
        short: dict[str, tuple[int, ...]] = {}

        def encode(text):
            if len(text) > SHORT_TEXT:
                return encode_any(text)
            ids = short.get(text)
            if ids is None:
                ids = tuple(encode_any(text))
                if len(short) < SHORT_TEXT_ENTRIES:
                    short[text] = ids
            return list(ids)
        _TEXT_ENCODERS[tokenizer] = encode
    return encode


class _Builder:
    """Accumulates ids and labels, encoding runs of adjacent text in one tokenizer call."""

    def __init__(self, tokenizer):
        self.encode = text_encoder(tokenizer)
        self.ids: list[int] = []
        self.labels: list[int] = []
        self._text: list[str] = []
        self._text_trained = False

    def text(self, text: str, trained: bool) -> None:
        if self._text and self._text_trained != trained:
            self.flush()
        self._text.append(text)
        self._text_trained = trained

    def flush(self) -> None:
        if not self._text:
            return
        ids = self.encode("".join(self._text))
        self.ids += ids
        self.labels += ids if self._text_trained else [IGNORE] * len(ids)
        self._text = []

    def tokens(self, ids: list[int], trained: bool = False) -> None:
        self.flush()
        self.ids += ids
        self.labels += ids if trained else [IGNORE] * len(ids)


def render_sample(sample: Sample, media: dict[str, DecodedVisual | DecodedAudio], tokenizer, special: SpecialIds,
                  accounting: TokenAccounting, config: RenderConfig = RenderConfig(),
                  assistant_override: dict[int, str] | None = None) -> RenderedSample:
    """Qwen chat template: ``<|im_start|>role\\n...<|im_end|>\\n`` per message; media expanded per token accounting.

    ``media`` maps member suffixes to decoded media; ``assistant_override`` replaces the answer text of the
    given turns (DPO's chosen/rejected). Labels hold the ids of trained assistant answers and
    ``<|im_end|>`` after them, IGNORE elsewhere (including every media token).
    """
    out = RenderedSample(key=sample.key, input_ids=[], labels=[])
    b = _Builder(tokenizer)
    nl = [special.newline]
    if config.system_prompt:
        b.tokens([special.im_start])
        b.text("system\n" + config.system_prompt, trained=False)
        b.tokens([special.im_end] + nl)
    turns = sample.dialogue.turns
    final = len(turns) - 1
    for turn in turns:
        _render_message(b, turn.user, media, special, accounting, config, out, trained=False)
        trained = config.label_mode == "assistant" or turn.index == final
        answer = (assistant_override or {}).get(turn.index)
        b.tokens([special.im_start])
        b.text("assistant\n", trained=False)
        b.flush()
        start = len(b.ids)
        _render_parts(b, turn.assistant, media, special, accounting, out, trained=trained, text_override=answer)
        b.tokens([special.im_end], trained=trained)
        out.assistant_turns.append((start, len(b.ids)))
        b.tokens(nl)
    b.flush()
    out.input_ids, out.labels = b.ids, b.labels
    return out


def _render_message(b: _Builder, message: Message, media, special: SpecialIds, accounting: TokenAccounting,
                    config: RenderConfig, out: RenderedSample, trained: bool) -> None:
    b.tokens([special.im_start])
    b.text(message.role + "\n", trained=False)
    if config.spoken_user and message.speech_member:
        for part in message.parts:
            if part.kind != "text":
                _media_tokens(b, part.member, part.kind, media, special, accounting, out)
                b.text("\n", trained=False)
        _media_tokens(b, message.speech_member, "audio", media, special, accounting, out)
    else:
        _render_parts(b, message, media, special, accounting, out, trained=trained)
    b.tokens([special.im_end, special.newline])


def _render_parts(b: _Builder, message: Message, media, special: SpecialIds, accounting: TokenAccounting,
                  out: RenderedSample, trained: bool, text_override: str | None = None) -> None:
    if text_override is not None:
        b.text(text_override, trained=trained)
        return
    first = True
    for part in message.parts:
        if not first:
            b.text("\n", trained=trained and part.kind == "text")
        first = False
        if part.kind == "text":
            b.text(part.text or "", trained=trained)
        else:
            _media_tokens(b, part.member, part.kind, media, special, accounting, out)


def _media_tokens(b: _Builder, member: str, kind: str, media, special: SpecialIds, accounting: TokenAccounting,
                  out: RenderedSample) -> None:
    decoded = media.get(member)
    if decoded is None:
        raise KeyError(f"sample refers to member {member!r} that is not in the shard")
    if kind in ("image", "video"):
        if not isinstance(decoded, DecodedVisual):
            raise KeyError(f"member {member!r} is not visual media")
        n = decoded.tiles.shape[0]
        count = accounting.image_context(n) if kind == "image" else accounting.video_context(n)
        b.tokens([special.img_start] + [special.img_context] * count + [special.img_end])
        out.visuals.append(decoded.tiles)
        if decoded.audio is not None:
            _audio_span(b, decoded.audio, special, accounting, out)
    else:
        if not isinstance(decoded, DecodedAudio):
            raise KeyError(f"member {member!r} is not audio")
        _audio_span(b, decoded, special, accounting, out)


def _audio_span(b: _Builder, decoded: DecodedAudio, special: SpecialIds, accounting: TokenAccounting,
                out: RenderedSample) -> None:
    count = accounting.audio_context(decoded.seconds)
    b.tokens([special.audio_start] + [special.audio_context] * count + [special.audio_end])
    out.audios.append((decoded.mels, count))
