"""The Qwen3 causal LM, built from a config or loaded from a local checkpoint."""

from __future__ import annotations

from torch import nn

from training.model.config import LLMConfig


def build_llm(config: LLMConfig, attn_implementation: str = "sdpa") -> nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if config.pretrained:
        return Qwen3ForCausalLM.from_pretrained(config.pretrained, local_files_only=True,
                                                attn_implementation=attn_implementation)
    hf = Qwen3Config(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.layers,
        num_attention_heads=config.heads, num_key_value_heads=config.kv_heads, head_dim=config.head_dim,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
        rope_theta=config.rope_theta, tie_word_embeddings=config.tie_word_embeddings, use_cache=False,
    )
    hf._attn_implementation = attn_implementation
    return Qwen3ForCausalLM(hf)
