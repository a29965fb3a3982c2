"""How a typed fact becomes a short answer, and how answers are matched inside free text."""

from __future__ import annotations

import re

from schemas.dialogue import Turn
from schemas.media import Fact

ANSWER_SEPARATOR = "; "
"""Joins the parts of a multi-item answer key (``red; Kyoto``); every part must appear in the answer."""

LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "ja": "Japanese", "zh": "Chinese", "ru": "Russian"}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces, padded so that `` part `` matches whole words only."""
    return " " + _NON_WORD.sub(" ", text.lower()).strip() + " "


def mentions(text: str, part: str) -> bool:
    """True when ``part`` appears in ``text`` as whole words, ignoring case and punctuation."""
    needle = normalize(part)
    return needle.strip() != "" and needle in normalize(text)


def answer_parts(turn: Turn) -> list[str]:
    return [p for p in turn.answer_key.split(ANSWER_SEPARATOR) if p.strip()] if turn.answer_key else []


def clean_value(value: str) -> str:
    text = " ".join(value.split())
    return text.replace(";", ",").strip()


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def fact_answer(fact: Fact) -> str:
    """The short answer a question about ``fact`` must get; derived from the fact value only."""
    value = clean_value(fact.value)
    number = _as_float(value)
    if fact.kind == "brightness" and number is not None:
        return "dark" if number < 0.3 else "dim" if number < 0.55 else "bright"
    if fact.kind == "motion" and number is not None:
        return "static" if number < 0.02 else "slow" if number < 0.08 else "fast"
    if fact.kind == "duration" and number is not None:
        seconds = max(1, round(number))
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    if fact.kind == "spoken_language":
        return LANGUAGE_NAMES.get(value.lower(), value)
    if fact.kind == "media_kind":
        return {"audio": "audio clip"}.get(value.lower(), value.lower())
    if fact.kind == "spoken_text":
        return value.rstrip(".!?,")
    return value


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)
