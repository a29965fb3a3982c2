"""The template writer's phrasings: per fact kind and question type, personal statements, general knowledge."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

PHRASEBOOK_VERSION = "4"


@dataclass(frozen=True, slots=True)
class KindPhrases:
    ask_current: tuple[str, ...]
    """About the media shown in this turn; ``{noun}`` names it, ``{span}`` and ``{at}`` the fact's time when known."""
    ask_memory: tuple[str, ...]
    """About earlier media; ``{ref}`` says which one."""
    answers: tuple[str, ...]
    """``{a}`` is the grounded answer; ``{subj}`` and the verb slots follow the tense."""
    recallable: bool = True
    """False where the answer word also names things in ordinary questions, so memory of it cannot be isolated."""
    ask_current_span: tuple[str, ...] = ()
    """Asked instead of ``ask_current`` when the fact holds over part of the clip: ``{start}`` and ``{end}`` are
    its seconds (a clip's several caption events are told apart by their time only)."""
    ask_memory_span: tuple[str, ...] = ()
    """Likewise for ``ask_memory``."""

    def asks(self, *, memory: bool, span: bool) -> tuple[str, ...]:
        """The questions for a fact over part of the clip (``span``) or over all of it."""
        spanned = self.ask_memory_span if memory else self.ask_current_span
        return spanned if span and spanned else self.ask_memory if memory else self.ask_current


KIND_PHRASES: dict[str, KindPhrases] = {
    "dominant_color": KindPhrases(
        ("What colour stands out most in this {noun}?", "Which colour dominates this {noun}?",
         "What's the main colour you see in this {noun}?"),
        ("What was the main colour in {ref}?", "Which colour dominated {ref}?",
         "Do you remember the dominant colour of {ref}?"),
        ("{Subj} {is} mostly {a}.", "The dominant colour {is} {a}.", "Mainly {a}.")),
    "brightness": KindPhrases(
        ("How would you describe the lighting in this {noun}?", "How well lit is this {noun}?"),
        ("How was the lighting in {ref}?", "How well lit was {ref}?"),
        ("Lighting-wise, {subj} {is} {a}.", "The lighting {is} {a}.")),
    "motion": KindPhrases(
        ("How much movement is there in this {noun}?", "How fast do things move in this {noun}?"),
        ("How much movement was there in {ref}?", "How fast did things move in {ref}?"),
        ("{Subj} {is} {a}.", "Motion-wise, {subj} {is} {a}.")),
    "on_screen_text": KindPhrases(
        ("What text appears on screen?", "What does the writing in this {noun} say?",
         "Can you read the text shown in this {noun}?"),
        ("What text appeared in {ref}?", "What did the writing in {ref} say?"),
        ("{Subj} {reads} \"{a}\".", "The text {is} \"{a}\".")),
    "spoken_keyword": KindPhrases(
        ("Which word is spoken{at} in this {noun}?", "What word does the speaker say{at}?"),
        ("Which word was spoken{at} in {ref}?", "What word did the speaker say{at} in {ref}?"),
        ("The speaker {says} \"{a}\".", "The word {is} \"{a}\".")),
    "spoken_text": KindPhrases(
        ("What does the speaker say{span}?", "What is said in this {noun}{span}?", "Can you transcribe the speech{span}?"),
        ("What was said in {ref}{span}?", "What did the speaker say in {ref}{span}?"),
        ("The speaker {says}: \"{a}\".", "The words {are}: \"{a}\".")),
    "duration": KindPhrases(
        ("How long is this {noun}?", "What's the length of this {noun}?"),
        ("How long was {ref}?", "What was the length of {ref}?"),
        ("{Subj} {lasts} about {a}.", "About {a}.")),
    "media_kind": KindPhrases(
        ("What kind of media is this?", "What type of file did I just share?"),
        ("What kind of media was {ref}?",),
        ("{Subj} {is} {article} {a}.", "That {is} {article} {a}."), recallable=False),
    "spoken_language": KindPhrases(
        ("What language is spoken in this {noun}?", "Which language does the speaker use here?"),
        ("What language was spoken in {ref}?", "Which language did the speaker use in {ref}?"),
        ("The speaker {uses} {a}.", "{Subj} {is} in {a}.")),
    "caption": KindPhrases(
        ("What does this {noun} show?", "Describe what you see in this {noun}."),
        ("What did {ref} show?", "What was in {ref}?"),
        ("{Subj} {shows} {a}.", "I {see} {a}."),
        ask_current_span=("What happens between {start} and {end} seconds into this {noun}?",
                          "Describe what you see from {start} to {end} seconds in this {noun}."),
        ask_memory_span=("What happened between {start} and {end} seconds into {ref}?",
                         "What did {ref} show from {start} to {end} seconds in?")),
    "metadata": KindPhrases(
        ("What does the metadata of this {noun} say?",),
        ("What did the metadata of {ref} say?",),
        ("The metadata {says} {a}.",)),
}

TENSES = {
    "present": {"is": "is", "are": "are", "reads": "reads", "says": "says", "lasts": "lasts", "uses": "uses",
                "shows": "shows", "see": "see"},
    "past": {"is": "was", "are": "were", "reads": "read", "says": "said", "lasts": "lasted", "uses": "used",
             "shows": "showed", "see": "saw"},
}

MEDIA_NOUNS = {"image": ("image", "picture", "photo"), "video": ("video", "clip"), "audio": ("recording", "sound bite")}
NEUTRAL_NOUN = "item"

REFERENCES = (
    ("the {noun} I shared {ago}", "the {noun} you shared {ago}"),
    ("the {noun} from {ago}", "the {noun} from {ago}"),
    ("that {noun} I showed you {ago}", "the {noun} you showed me {ago}"),
    ("the {ordinal} {noun} I shared", "the {ordinal} {noun} you shared"),
)
"""How a memory question points at earlier media: (user wording, assistant wording)."""

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth")

MULTI_OPENERS = ("Let's test your memory.", "Two things from earlier.", "Thinking back over our chat:",
                 "A quick memory check.")
STATEMENT_LEADS = ("By the way, ", "Oh, and ", "", "Side note: ")


@dataclass(frozen=True, slots=True)
class StatementSlot:
    """A personal detail the user mentions once, recalled later by a text-memory question."""

    statement: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    values: tuple[str, ...]


STATEMENT_SLOTS: dict[str, StatementSlot] = {
    "pet": StatementSlot("my dog is called {v}.", ("What did I say my dog is called?", "Do you remember my dog's name?"),
                         ("Your dog is called {v}.", "You said your dog's name is {v}."),
                         ("Biscuit", "Pepper", "Miso", "Juniper", "Waffles", "Ziggy", "Noodle", "Maple")),
    "trip": StatementSlot("I'm flying to {v} next month.", ("Which city am I flying to next month?",
                                                             "Where did I say I'm travelling next month?"),
                          ("You're flying to {v}.", "You mentioned a trip to {v}."),
                          ("Lisbon", "Kyoto", "Nairobi", "Montreal", "Oslo", "Hanoi", "Lima", "Tbilisi")),
    "sister": StatementSlot("my sister works as a {v}.", ("What does my sister do for a living?",
                                                          "What did I say my sister's job is?"),
                            ("She works as a {v}.", "Your sister is a {v}."),
                            ("pharmacist", "glassblower", "tax lawyer", "beekeeper", "pilot", "surveyor")),
    "book": StatementSlot("I'm reading a novel called {v}.", ("What's the novel I'm reading?",
                                                              "Which book did I say I'm reading?"),
                          ("You're reading {v}.", "The novel is {v}."),
                          ("The Salt Road", "Winter Orchard", "Paper Lanterns", "The Quiet Harbour", "Night Ferry")),
    "locker": StatementSlot("my gym locker is number {v}.", ("What's my gym locker number?",
                                                             "Which locker did I say is mine at the gym?"),
                            ("Your locker is number {v}.", "It's locker {v}."),
                            ("214", "87", "342", "509", "163", "731")),
    "dish": StatementSlot("I cooked {v} last night.", ("What did I cook last night?",
                                                       "Which dish did I say I made last night?"),
                          ("You cooked {v}.", "You made {v}."),
                          ("mushroom risotto", "lentil soup", "pad thai", "shakshuka", "dumplings", "paella")),
    "instrument": StatementSlot("I've started learning the {v}.", ("Which instrument am I learning?",
                                                                   "What instrument did I say I took up?"),
                                ("You're learning the {v}.", "You took up the {v}."),
                                ("cello", "banjo", "oboe", "ukulele", "harp", "trombone")),
    "street": StatementSlot("I live on {v}.", ("What street do I live on?", "Where did I say I live?"),
                            ("You live on {v}.", "Your street is {v}."),
                            ("Birch Lane", "Harbour Road", "Mill Street", "Quarry Avenue", "Elm Close")),
    "friend": StatementSlot("my best friend's name is {v}.", ("What's my best friend's name?",
                                                              "Who did I say my best friend is?"),
                            ("Your best friend is {v}.", "You said {v} is your best friend."),
                            ("Tomasz", "Ingrid", "Kwame", "Soraya", "Mateo", "Hiroko")),
    "plant": StatementSlot("I keep a {v} on my desk.", ("What plant do I keep on my desk?",
                                                        "Which plant did I say sits on my desk?"),
                           ("You keep a {v} on your desk.", "A {v}."),
                           ("cactus", "bonsai", "fern", "orchid", "succulent", "peace lily")),
}

GENERAL_KNOWLEDGE: tuple[tuple[str, str, str], ...] = (
    ("What is the capital of Japan?", "Tokyo", "The capital of Japan is Tokyo."),
    ("Which is the largest planet in our solar system?", "Jupiter", "Jupiter is the largest planet."),
    ("What is the chemical symbol for gold?", "Au", "Gold's chemical symbol is Au."),
    ("Who wrote Pride and Prejudice?", "Jane Austen", "Pride and Prejudice was written by Jane Austen."),
    ("At what temperature does water boil at sea level, in Celsius?", "100 degrees", "It boils at 100 degrees Celsius."),
    ("Which is the largest ocean on Earth?", "Pacific", "The Pacific is the largest ocean."),
    ("Which gas do plants take in for photosynthesis?", "carbon dioxide", "Plants take in carbon dioxide."),
    ("How many continents are there?", "seven", "There are seven continents."),
    ("Which river carries the most water in South America?", "Amazon", "The Amazon does."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What is the hardest natural substance?", "diamond", "Diamond is the hardest natural substance."),
    ("What is the smallest prime number?", "two", "The smallest prime number is two."),
    ("What is the tallest mountain above sea level?", "Everest", "Mount Everest is the tallest."),
    ("At what temperature does water freeze, in Fahrenheit?", "32 degrees", "Water freezes at 32 degrees Fahrenheit."),
    ("Which organ pumps blood around the body?", "heart", "The heart pumps blood around the body."),
    ("What is the square root of 81?", "nine", "The square root of 81 is nine."),
    ("Who developed the theory of relativity?", "Albert Einstein", "Albert Einstein developed it."),
    ("Which keyboard instrument usually has 88 keys?", "piano", "The piano has 88 keys."),
    ("What is the capital of Canada?", "Ottawa", "Ottawa is the capital of Canada."),
    ("How many minutes are there in an hour?", "sixty", "There are sixty minutes in an hour."),
    ("Which metal is liquid at room temperature?", "mercury", "Mercury is liquid at room temperature."),
    ("What do bees make from nectar?", "honey", "Bees make honey from nectar."),
)


def phrasebook_hash() -> str:
    """Hash of every phrasing, recorded in lineage as the template writer's prompt hash."""
    payload = json.dumps({
        "kinds": {k: [v.ask_current, v.ask_memory, v.answers, v.recallable] for k, v in KIND_PHRASES.items()},
        "refs": REFERENCES, "slots": {k: [s.statement, s.questions, s.answers, s.values]
                                      for k, s in STATEMENT_SLOTS.items()},
        "general": GENERAL_KNOWLEDGE, "openers": MULTI_OPENERS, "leads": STATEMENT_LEADS,
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
