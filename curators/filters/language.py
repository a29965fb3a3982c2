"""Language: the dialogue text must be in the corpus language (a stopword-profile detector, no model)."""

from __future__ import annotations

from curators.filters.base import DialogueFilter, FilterContext
from curators.writers.grounding import normalize
from schemas.dialogue import Sample, Verdict

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(("the", "a", "an", "and", "or", "of", "to", "in", "on", "at", "is", "was", "were", "are", "be",
                     "it", "this", "that", "what", "which", "who", "how", "did", "do", "does", "you", "your", "i",
                     "my", "me", "with", "for", "from", "about", "there", "here", "not")),
    "de": frozenset(("der", "die", "das", "und", "oder", "ist", "war", "sind", "ein", "eine", "zu", "im", "mit",
                     "von", "auf", "nicht", "ich", "du", "sie", "es", "was", "wie", "wer", "dem", "den", "des",
                     "für")),
    "fr": frozenset(("le", "la", "les", "et", "ou", "est", "était", "sont", "un", "une", "des", "du", "de", "en",
                     "dans", "avec", "pour", "pas", "je", "tu", "il", "elle", "que", "qui", "quoi", "comment")),
    "es": frozenset(("el", "la", "los", "las", "y", "o", "es", "era", "son", "un", "una", "unos", "de", "del", "en",
                     "con", "para", "por", "no", "yo", "tu", "que", "qué", "quién", "cómo")),
}
MIN_WORDS = 6
"""Shorter texts carry too few stopwords to tell a language."""


def detect_language(text: str) -> tuple[str | None, float]:
    """The language whose stopwords cover the most words, and that share (None when nothing matches)."""
    words = normalize(text).split()
    if not words:
        return None, 0.0
    shares = {lang: sum(w in stop for w in words) / len(words) for lang, stop in STOPWORDS.items()}
    lang = max(sorted(shares), key=lambda k: shares[k])
    return (lang, shares[lang]) if shares[lang] > 0 else (None, 0.0)


class LanguageFilter(DialogueFilter):
    name = "language"
    codes = frozenset({"wrong_language"})

    def __init__(self, language: str = "en", min_share: float = 0.08):
        self.language = language
        self.min_share = min_share

    def verdicts(self, sample: Sample, context: FilterContext) -> list[Verdict]:
        text = " ".join(f"{t.user.text} {t.assistant.text}" for t in sample.dialogue.turns)
        if len(text.split()) < MIN_WORDS:
            return [self.accept(None, detail="too short to tell")]
        lang, share = detect_language(text)
        if lang != self.language or share < self.min_share:
            return [self.reject("wrong_language", f"looks like {lang or 'no known language'} (stopword share "
                                                  f"{share:.2f}), expected {self.language}", share)]
        return [self.accept(round(share, 4))]
