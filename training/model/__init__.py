"""The omni model: vision and audio encoders with projectors, the Qwen3 LLM, the speech decoder. No parallelism here."""
