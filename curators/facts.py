"""Turn a clip's transcript, visual measurements and metadata into typed facts that questions are grounded on."""

from __future__ import annotations

import hashlib
import re

from schemas.media import AnnotatedClip, Clip, ClipCaption, Fact, Transcript, VisualFacts

# Words too common to be worth asking about.
STOPWORDS = frozenset("""
a an the and or but if then so of on in at to for from by with without into onto over under about as is are
was were be been being am do does did done have has had having it its this that these those there here i you
he she we they me him her us them my your his our their mine yours what which who whom whose when where why
how not no yes all any some each every more most much many very can could will would shall should may might
must just also too only than out up down off again once word words please remember one two yesterday today
o'clock
""".split())
MIN_KEYWORD_LETTERS = 4
MAX_KEYWORDS = 5
DARK_BELOW = 0.3
BRIGHT_ABOVE = 0.65
MOVING_ABOVE = 0.01
FACTS_VERSION = "facts/1"


def fact_id_for(clip_id: str, kind: str, value: str, start_s: float | None) -> str:
    key = f"{clip_id}|{kind}|{value}|{'' if start_s is None else f'{start_s:.3f}'}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fact(clip: Clip, kind: str, value: str, source: str, confidence: float = 1.0,
          start_s: float | None = None, end_s: float | None = None) -> Fact:
    return Fact(fact_id=fact_id_for(clip.clip_id, kind, value, start_s), clip_id=clip.clip_id, kind=kind,
                value=value, source=source, confidence=round(float(confidence), 4), start_s=start_s, end_s=end_s)


def brightness_label(mean_brightness: float) -> str:
    if mean_brightness < DARK_BELOW:
        return "dark"
    if mean_brightness > BRIGHT_ABOVE:
        return "bright"
    return "medium"


def clean_word(word: str) -> str:
    return re.sub(r"^[^\w]+|[^\w]+$", "", word).lower()


def transcript_facts(clip: Clip, transcript: Transcript) -> list[Fact]:
    facts = []
    if not transcript.segments:
        return facts
    facts.append(_fact(clip, "spoken_language", transcript.language, "transcript", transcript.language_probability))
    seen: set[str] = set()
    keywords = []
    for segment in transcript.segments:
        facts.append(_fact(clip, "spoken_text", segment.text, "transcript", segment.confidence, segment.start_s,
                           segment.end_s))
        for word in segment.words:
            token = clean_word(word.word)
            if (len(token) >= MIN_KEYWORD_LETTERS and token.isalpha() and token not in STOPWORDS
                    and token not in seen):
                seen.add(token)
                keywords.append((word, token))
    # later words first: in narration the salient word tends to close the sentence
    keywords.sort(key=lambda item: -item[0].start_s)
    for word, token in keywords[:MAX_KEYWORDS]:
        facts.append(_fact(clip, "spoken_keyword", token, "transcript", word.probability, word.start_s, word.end_s))
    return facts


def visual_fact_rows(clip: Clip, visual: VisualFacts) -> list[Fact]:
    facts = []
    for rank, colour in enumerate(visual.dominant_colors):
        facts.append(_fact(clip, "dominant_color", colour, "visual", 1.0 / (rank + 1)))
    facts.append(_fact(clip, "brightness", brightness_label(visual.mean_brightness), "visual"))
    if clip.kind == "video":
        facts.append(_fact(clip, "motion", "moving" if visual.motion > MOVING_ABOVE else "static", "visual"))
    text = " ".join(visual.ocr_text.split())
    if text:
        facts.append(_fact(clip, "on_screen_text", text, "visual"))
    return facts


def caption_facts(clip: Clip, caption: ClipCaption) -> list[Fact]:
    """One ``caption`` fact per time-stamped event, or one ``caption_refused`` fact saying why there is none."""
    if caption.refused:
        return [_fact(clip, "caption_refused", caption.refused, "caption", 0.0)]
    return [_fact(clip, "caption", e.text, "caption", start_s=e.start_s, end_s=e.end_s) for e in caption.events]


def annotate_clip(clip: Clip, transcript: Transcript | None, visual: VisualFacts | None,
                  metadata: dict[str, str] | None = None, source_sha256: str = "",
                  caption: ClipCaption | None = None) -> AnnotatedClip:
    """Collect every fact about a clip, in a fixed order (kind groups, then time)."""
    facts = [_fact(clip, "media_kind", clip.kind, "metadata")]
    if clip.kind != "image":
        facts.append(_fact(clip, "duration", f"{clip.duration_s:.1f}", "metadata", start_s=0.0,
                           end_s=round(clip.duration_s, 3)))
    if transcript is not None:
        facts.extend(transcript_facts(clip, transcript))
    if visual is not None:
        facts.extend(visual_fact_rows(clip, visual))
    if caption is not None:
        facts.extend(caption_facts(clip, caption))
    for key in sorted(metadata or {}):
        value = " ".join(str(metadata[key]).split())
        if value:
            facts.append(_fact(clip, "metadata", f"{key}: {value}", "metadata"))
    return AnnotatedClip(clip=clip, facts=facts, transcript=transcript, visual=visual, source_sha256=source_sha256)
