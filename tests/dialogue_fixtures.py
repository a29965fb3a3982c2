"""Hand-built annotated clips for the dialogue tests (what the media stage would produce)."""

from __future__ import annotations

from schemas.media import AnnotatedClip, Clip, Fact, Transcript, TranscriptSegment, VisualFacts

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
WORDS = ("apple", "river", "guitar", "lantern", "pencil", "tiger", "cloud", "basket", "mirror", "rocket")
SHA = "cd" * 32


def annotated_clip(i: int, kind: str = "video", media_path: str = "/nonexistent/clip.mp4",
                   media_id: str | None = None) -> AnnotatedClip:
    """Clip ``i`` with a colour, a keyword, a spoken sentence with its span, on-screen text and brightness."""
    clip_id = f"clip{i:03d}"
    end = 0.0 if kind == "image" else 4.0 + i % 3
    clip = Clip(clip_id=clip_id, media_id=media_id or f"media{i // 2:03d}", source_uri=f"/corpus/src{i // 2}.mp4",
                kind=kind, start_s=0.0, end_s=end, media_path=media_path, frame_paths=[], frame_times_s=[],
                audio_path=None if kind == "image" else "/nonexistent/a.wav", width=640, height=480)
    word = WORDS[i % len(WORDS)]
    facts = [Fact(fact_id=f"{clip_id}-f0", clip_id=clip_id, kind="media_kind", value=kind, source="metadata")]
    if kind != "audio":
        facts += [Fact(fact_id=f"{clip_id}-f1", clip_id=clip_id, kind="dominant_color", value=COLOURS[i % len(COLOURS)],
                       source="visual"),
                  Fact(fact_id=f"{clip_id}-f2", clip_id=clip_id, kind="brightness", value=f"{0.1 + 0.1 * (i % 8):.2f}",
                       source="visual"),
                  Fact(fact_id=f"{clip_id}-f3", clip_id=clip_id, kind="on_screen_text", value=f"SIGN {i}",
                       source="visual")]
    transcript = None
    if kind != "image":
        sentence = f"The {word} is next to the door number {i}"
        facts += [Fact(fact_id=f"{clip_id}-f4", clip_id=clip_id, kind="spoken_keyword", value=word,
                       source="transcript", start_s=0.5, end_s=1.0),
                  Fact(fact_id=f"{clip_id}-f5", clip_id=clip_id, kind="spoken_text", value=sentence,
                       source="transcript", start_s=0.2, end_s=2.6),
                  Fact(fact_id=f"{clip_id}-f6", clip_id=clip_id, kind="duration", value=str(end), source="metadata")]
        transcript = Transcript(clip_id=clip_id, model_id="tiny.en", language="en", language_probability=0.98,
                                text=sentence, segments=[TranscriptSegment(text=sentence, start_s=0.2, end_s=2.6,
                                                                           avg_logprob=-0.2, no_speech_prob=0.01)])
    visual = None if kind == "audio" else VisualFacts(clip_id=clip_id, dominant_colors=[COLOURS[i % len(COLOURS)]],
                                                      mean_brightness=0.5, motion=0.0, ocr_text=f"SIGN {i}")
    return AnnotatedClip(clip=clip, facts=facts, transcript=transcript, visual=visual, source_sha256=SHA)


def clip_pool(n: int) -> list[AnnotatedClip]:
    kinds = ("video", "image", "audio")
    return [annotated_clip(i, kinds[i % 3]) for i in range(n)]


CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def build_tiny_causal_lm(folder):
    """A random 2-layer Llama and a byte-level BPE tokenizer trained on a few sentences, saved like any checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Question: what colour was the video? Answer: it was red."] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
