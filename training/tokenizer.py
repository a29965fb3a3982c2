"""Training's tokenizer: schemas' omni Qwen tokenizer (or a checkpoint's own), and the ids the loader places."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from schemas.text_tokens import (OMNI_TOKENS, QWEN3_ADDED_TOKENS, QWEN_BPE_RANKS, QWEN_PATTERN, convert_qwen_tokenizer,
                                 default_cache_dir, load_qwen_tokenizer, qwen_ranks_path)

__all__ = ["OMNI_TOKENS", "QWEN3_ADDED_TOKENS", "QWEN_BPE_RANKS", "QWEN_PATTERN", "SpecialIds",
           "convert_qwen_tokenizer", "default_cache_dir", "load_tokenizer", "qwen_ranks_path"]


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


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None):
    """The omni Qwen tokenizer: from ``path`` (any HF tokenizer directory) or converted once and cached on disk."""
    if path:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    return load_qwen_tokenizer()
