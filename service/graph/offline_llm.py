"""Offline LLM: a deterministic, rule-based stand-in for the LLM calls Graphiti makes.

THIS IS A LOW-QUALITY FALLBACK. It exists so that Synapse can run (and be tested end to end)
with no model provider at all: no network, no weights, no randomness. It reads the prompts
Graphiti renders (graphiti-core 0.31.1, ``graphiti_core/prompts/*``), pulls the sections it
needs out of them (``<ENTITY TYPES>``, ``<CURRENT MESSAGE>``, ``<ENTITIES>``, ...) and answers
with a JSON-ready dict that validates against the response model Graphiti asked for. Its
"understanding" is a handful of regular expressions:

* capitalised words that are not common sentence openers become named entities;
* "I'm tired" / "I feel frustrated" (a mood from a small list) become a ``MentalState``;
* "I'm at a noisy cafe" becomes an ``Environment`` named after the kind of place;
* "I need to book the dentist", "worried about the rent", "waiting on the landlord" become a
  ``Tension`` (status ``unresolved``); "I booked the dentist" becomes the resolved twin;
* every finding yields one fact from the speaker to that entity, re-using the speaker's words
  in the third person ("User needs to book the dentist before Friday").

Anything subtler (coreference, negation beyond "not", sarcasm, implicit facts) is missed.
The narrative cues only fire when the matching type is offered in ``<ENTITY TYPES>``, because
Graphiti's default rules forbid feelings and actions as entities.

The module is pure: no I/O, no Graphiti import, and every output is a function of the input.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "detect_user_name",
    "hashing_embedding",
    "lexical_relevance",
    "structured_response",
    "summarize_transcript",
    "text_response",
]


def _words(text: str) -> frozenset[str]:
    """A word set from whitespace-separated text (keeps the long lists readable)."""
    return frozenset(text.split())


# --------------------------------------------------------------------------------------------
# Word lists. Small on purpose: this is a fallback, and every entry is a false-positive risk.
# --------------------------------------------------------------------------------------------

MOODS: Final[tuple[str, ...]] = (
    "tired", "exhausted", "frustrated", "happy", "excited", "anxious", "stressed", "sad",
    "great", "angry", "upset", "overwhelmed", "nervous", "calm", "relaxed", "bored", "lonely",
    "sleepy", "energized", "energised", "motivated", "drained", "annoyed", "grumpy",
    "depressed", "hopeful", "proud", "scared", "cheerful", "content",
)  # fmt: skip

# Energy is only "apparent" for some moods (narrative.MentalState.energy_level); others → null.
_ENERGY: Final[Mapping[str, str]] = {
    "tired": "Low", "exhausted": "Low", "sleepy": "Low", "drained": "Low", "bored": "Low",
    "sad": "Low", "depressed": "Low", "lonely": "Low",
    "calm": "Medium", "relaxed": "Medium", "content": "Medium",
    "excited": "High", "energized": "High", "energised": "High", "motivated": "High",
    "great": "High", "cheerful": "High",
}  # fmt: skip

_VIBES: Final[frozenset[str]] = _words(
    "noisy quiet busy crowded calm cozy cosy loud peaceful empty packed chaotic hectic relaxed "
    "bright dark cold warm hot sunny rainy lively cramped messy tidy clean dirty"
)

# Places that read naturally without an article ("I'm at home", "I'm at work").
_BARE_PLACES: Final[frozenset[str]] = _words(
    "home work school church college university uni bed hospital camp"
)

# "I'm in a hurry" / "I'm in a good mood" look like places to the regex; they are not.
_NON_PLACES: Final[frozenset[str]] = _words(
    "hurry rush mood bit lot way minute moment sec second while state situation relationship "
    "position trouble love mess pinch sense fact general particular charge favor favour need "
    "middle row loop process habit shape touch time phone call line fence edge verge brink team "
    "board list go track"
)

_WEEKDAYS: Final[tuple[str, ...]] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)  # fmt: skip
_MONTHS: Final[tuple[str, ...]] = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_TIME_WORDS: Final[frozenset[str]] = frozenset((*_WEEKDAYS, *_MONTHS)) | _words(
    "today tomorrow tonight yesterday morning afternoon evening night weekend week month year "
    "noon midnight"
)

# Capitalised words that are not names: sentence openers, pronouns, fillers. A run of
# capitalised words loses these at its edges ("Thanks Ashley" → "Ashley").
_COMMON: Final[frozenset[str]] = (
    _words(
        """
    a an the this that these those i i'm i've i'll i'd im ive me my mine myself we us our ours
    you your yours he him his she her hers it its it's they them their theirs there here what
    which who whom whose when where why how and or but so because if then than though although
    while as at by for from in into of off on onto out over to up with without about after
    before again also just only still even really very too not no yes yeah yep nope ok okay
    sure well oh ah hey hi hello thanks thank please sorry good nice cool fine awesome perfect
    wow hmm um uh lol got get gets getting go going gone went do does did done doing be is am
    are was were been being have has had having can could will would shall should may might
    must let let's lets need needs want wants think know see look maybe perhaps actually anyway
    anyways finally now later soon never always sometimes usually all any some every each both
    either neither none nothing something anything everything someone anyone everyone nobody
    much many more most less few lot lots first last next new old other another same such one
    two three right left back down make made take took tell told say said feel felt try tried
    remember don't didn't can't won't isn't aren't wasn't it'll that's what's there's here's
    dear asap fyi btw omg tbh imo idk great bye goodbye cheers welcome congrats congratulations
    honestly basically seriously hopefully luckily unfortunately fortunately apparently obviously
    literally clearly besides meanwhile however ugh yay oops damn argh nah alright guess
    user assistant speaker note reminder ps
    """
    )
    | frozenset(MOODS)
    | _TIME_WORDS
)

# Words that carry little meaning in Graphiti facts ("User needs to ..."). The embedding
# down-weights them so the content words decide similarity (see hashing_embedding).
_STOPWORDS: Final[frozenset[str]] = _words(
    """
    a an the this that these those i im ive me my mine we us our you your he him his she her
    it its they them their there here what which who when where why how and or but so because
    if then than as at by for from in into of off on onto out over to up with about after
    before again also just only still even really very too not no is am are was were be been
    being have has had do does did can could will would shall should may might must user users
    need needs needed mentioned mention mentions that feels feel felt said says say s t
    """
)

_USER_SPEAKERS: Final[frozenset[str]] = _words("user human me customer client you")
_ASSISTANT_SPEAKERS: Final[frozenset[str]] = _words(
    "assistant ai bot system agent model gpt claude synapse"
)

# Past-tense verbs that close an open loop, mapped to the base form used in Tension names:
# "I booked the dentist" → "Book the dentist", which dedupes onto the earlier open Tension.
_COMPLETIONS: Final[Mapping[str, str]] = {
    "booked": "book", "finished": "finish", "completed": "complete", "did": "do",
    "sent": "send", "paid": "pay", "fixed": "fix", "submitted": "submit", "called": "call",
    "emailed": "email", "cleaned": "clean", "bought": "buy", "wrote": "write",
    "scheduled": "schedule", "cancelled": "cancel", "canceled": "cancel",
    "returned": "return", "renewed": "renew", "signed": "sign", "filed": "file",
    "mailed": "mail", "sorted": "sort", "handed in": "hand in", "turned in": "turn in",
    "picked up": "pick up", "paid off": "pay off", "replied to": "reply to",
}  # fmt: skip
_RESOLVED_CUES: Final[tuple[str, ...]] = (
    "done", "finished", "booked", "completed", "sorted", "handled", "taken care of", "resolved",
    "paid", "sent", "submitted", "fixed",
)  # fmt: skip

_IRREGULAR_PAST: Final[frozenset[str]] = _words(
    "was were had did went got made met saw said thought felt took came knew left bought told "
    "found gave ate wrote ran sent paid spent lost won heard kept slept brought began forgot "
    "could would should might must can will shall may used"
)
# Words after "I" that keep their form in the third person (modals, negations, conjunctions).
_NO_CONJUGATION: Final[frozenset[str]] = _words(
    "can cannot could will would shall should may might must and or but also too never ever"
)
_ADVERBS: Final[tuple[str, ...]] = (
    "really", "just", "still", "also", "actually", "totally", "finally", "already",
    "definitely", "probably", "always", "never", "usually", "honestly", "seriously",
    "literally", "now", "currently", "so", "even", "only", "truly",
)  # fmt: skip

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})

# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def structured_response(
    schema_name: str,
    messages: Sequence[Mapping[str, str]],
    json_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer one of Graphiti's structured-output calls.

    ``schema_name`` is the response model's class name (``text.format.name`` on the Responses
    API, ``response_format.json_schema.name`` on chat completions); ``messages`` are the
    system and user prompts exactly as Graphiti rendered them. Unknown names (custom entity or
    edge types) are filled field by field from ``json_schema`` using field-name heuristics.
    The result validates against the named model.
    """
    prompt = _Prompt.from_messages(messages)
    handler = _HANDLERS.get(schema_name)
    if handler is not None:
        return handler(prompt)
    return _custom_attributes(prompt, json_schema)


def text_response(messages: Sequence[Mapping[str, str]]) -> str:
    """A plain-text answer for calls without a response format: a recap of the last user turn."""
    prompt = _Prompt.from_messages(messages)
    last = prompt.last_user.strip()
    lines = [line for line in last.splitlines() if line.strip()]
    recap = summarize_transcript(None, lines, 400)
    return recap or "OK."


def summarize_transcript(previous: str | None, lines: Sequence[str], max_chars: int) -> str:
    """Fold new transcript lines into a rolling summary of at most ``max_chars`` characters.

    User lines are rewritten in the third person ("I need to X" → "User needs to X."), trivial
    turns and assistant turns are dropped, repeats are skipped, and when the text grows past
    ``max_chars`` the oldest sentences go first. A detected user name is pinned at the front.
    """
    if max_chars <= 0:
        return ""
    sentences = _split_sentences(previous) if previous else []
    name_sentence = next((s for s in sentences if s.startswith("User's name is ")), None)
    sentences = [s for s in sentences if not s.startswith("User's name is ")]
    seen = {_norm(s) for s in sentences}
    user_text: list[str] = []
    for turn in _turns("\n".join(lines)):
        if turn.role == "assistant":
            continue
        actor = turn.actor or "User"
        user_text.append(turn.text)
        for sentence in _split_sentences(turn.text):
            if _is_trivial(sentence):
                continue
            rewritten = _ensure_period(_third_person(sentence, actor))
            key = _norm(rewritten)
            if rewritten.startswith("User's name is "):
                continue  # the pinned name sentence below says this once
            if key not in seen:
                seen.add(key)
                sentences.append(rewritten)
    name = detect_user_name("\n".join(user_text))
    if name is not None:
        name_sentence = f"User's name is {name}."
    pinned = [name_sentence] if name_sentence else []
    # Roll: drop the oldest sentences until the rest fits; the name sentence stays pinned.
    while sentences and len(" ".join([*pinned, *sentences])) > max_chars:
        sentences.pop(0)
    text = " ".join([*pinned, *sentences])
    return _truncate_words(text, max_chars)


def detect_user_name(text: str) -> str | None:
    """The name a user gives for themself ("My name is Sam", "call me Sam", "I'm Sam")."""
    text = text.translate(_APOSTROPHES)
    match = re.search(
        r"\bmy name(?:'s| is)\s+([A-Za-z][\w'-]*)(?:\s+((?-i:[A-Z])[\w'-]*))?", text, re.IGNORECASE
    )
    if match and _plausible_name(match.group(1)):
        parts = [match.group(1)]
        if match.group(2) and _plausible_name(match.group(2)):
            parts.append(match.group(2))
        return " ".join(p[:1].upper() + p[1:] for p in parts)
    # Names must be capitalised from here on: "call me later" and "I'm going" are not names.
    patterns = (
        r"\b[Cc]all me\s+([A-Z][\w'-]*)(?:\s+([A-Z][\w'-]*))?",
        r"\b(?:I'm|I am|Im)\s+([A-Z][\w'-]*)(?:\s+([A-Z][\w'-]*))?",
    )
    for pattern in patterns:
        for found in re.finditer(pattern, text):
            if not _plausible_name(found.group(1)):
                continue
            parts = [found.group(1)]
            if found.group(2) and _plausible_name(found.group(2)):
                parts.append(found.group(2))
            return " ".join(parts)
    return None


def hashing_embedding(text: str, dim: int) -> list[float]:
    """Deterministic, L2-normalised feature-hashing embedding with lexical similarity.

    Features: every lower-cased word (light plural folding) and the character trigrams of
    that word with ``^``/``$`` boundary marks, each hashed with blake2b into ``dim`` signed
    buckets (random signs make colliding features cancel in expectation instead of adding up).

    Tuning, and why: a word contributes a unigram of weight ``0.8·w`` plus a trigram block of
    total norm ``0.6·w`` (0.8² + 0.6² = 1, so an identical word matches with cosine 1, and the
    trigram block gives partial credit to variants such as "book"/"booked"). Content words have
    ``w = 1``; stop words and Graphiti's fact boilerplate ("user", "needs", "mentioned", "the")
    have ``w = 0.15``; time words (weekdays, "tomorrow", ...) have ``w = 0.5`` because a
    deadline qualifies a fact more than it names its topic. That keeps short queries close to
    the facts that contain them: "dentist" scores ≈0.69 against "User needs to book the
    dentist" and ≈0.65 against "... before Friday", above the 0.6 cosine cut-off Graphiti's
    fact search applies, while texts sharing no content word stay near 0. A one-word query
    against a fact with three or more other content words falls under 0.6 (1/√3 ≈ 0.58);
    Graphiti's BM25 leg still finds those.

    Text with no word characters hashes its raw form into one bucket, so the result is
    always a unit vector (Neo4j's cosine is undefined for zero vectors).
    """
    if dim <= 0:
        raise ValueError("dim must be positive")
    vector = [0.0] * dim
    words = re.findall(r"[^\W_]+", text.translate(_APOSTROPHES).lower().replace("'", ""))
    if not words:
        bucket, sign = _bucket(f"raw:{text}", dim)
        vector[bucket] = sign
        return vector
    for raw in words:
        word = _fold_plural(raw)
        stop = raw in _STOPWORDS or word in _STOPWORDS  # "does" folds to "doe"
        weight = 0.15 if stop else 0.5 if word in _TIME_WORDS else 1.0
        bucket, sign = _bucket(f"w:{word}", dim)
        vector[bucket] += sign * 0.8 * weight
        marked = f"^{word}$"
        trigrams = [marked[i : i + 3] for i in range(len(marked) - 2)]
        share = 0.6 * weight / math.sqrt(len(trigrams))
        for trigram in trigrams:
            bucket, sign = _bucket(f"t:{trigram}", dim)
            vector[bucket] += sign * share
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # every feature cancelled out in collisions; astronomically unlikely
        bucket, sign = _bucket(f"raw:{text}", dim)
        vector[bucket] = sign
        return vector
    return [v / norm for v in vector]


def lexical_relevance(query: str, passage: str) -> float:
    """Relevance in [0, 1]: cosine of the hashing embeddings, clipped at 0 (for the reranker)."""
    a = hashing_embedding(query, 512)
    b = hashing_embedding(passage, 512)
    return max(0.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True))))


# --------------------------------------------------------------------------------------------
# Prompt access
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prompt:
    system: str
    user: str
    last_user: str

    @classmethod
    def from_messages(cls, messages: Sequence[Mapping[str, str]]) -> _Prompt:
        system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
        users = [m.get("content", "") for m in messages if m.get("role") != "system"]
        # Graphiti appends retry notes as extra user messages; the prompt proper comes first.
        return cls(system=system, user="\n".join(users), last_user=users[-1] if users else "")

    def section(self, tag: str) -> str | None:
        return _section(self.user, tag)

    @property
    def max_chars(self) -> int:
        """Graphiti states its summary limit in the prompt ("under 1000 characters")."""
        text = f"{self.system}\n{self.user}"
        match = re.search(r"(?:under|LESS THAN) (\d+) (?:characters|CHARACTERS)", text)
        return int(match.group(1)) if match else 1000


def _section(text: str, tag: str) -> str | None:
    start = text.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
        return None
    return text[start:end].strip()


def _parse_literal(text: str | None) -> Any:
    """Parse a prompt section that holds JSON (``to_prompt_json``) or a Python repr.

    Graphiti interpolates some lists straight into f-strings (``<ENTITY TYPES>``,
    ``<EXISTING FACTS>``, ``<ENTITY>``), which renders Python reprs, not JSON.
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _dict_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


@dataclass(frozen=True)
class _EntityType:
    type_id: int
    name: str


def _entity_types(prompt: _Prompt) -> list[_EntityType]:
    raw = prompt.section("ENTITY TYPES")
    parsed = _dict_list(_parse_literal(raw))
    types = [
        _EntityType(int(item["entity_type_id"]), str(item["entity_type_name"]))
        for item in parsed
        if isinstance(item.get("entity_type_id"), int) and item.get("entity_type_name")
    ]
    if types or raw is None:
        return types
    # A docstring with unusual characters can defeat literal_eval; the ids and names are
    # simple enough to recover with a pattern.
    return [
        _EntityType(int(m.group(1)), m.group(2))
        for m in re.finditer(r"'entity_type_id': (\d+), 'entity_type_name': '([^']+)'", raw)
    ]


def _messages_section(prompt: _Prompt, tag: str = "MESSAGES") -> tuple[str, list[str]]:
    """Split a ``<MESSAGES>`` block into (current episode content, previous contents).

    Attribute and summary prompts render ``to_prompt_json(previous_episodes)`` on one line and
    ``to_prompt_json(episode_content)`` (a JSON string) on the next.
    """
    raw = prompt.section(tag)
    if raw is None:
        return "", []
    current: str | None = None
    previous: list[str] = []
    for line in raw.splitlines():
        value = _parse_literal(line.strip())
        if isinstance(value, str):
            current = value
        elif isinstance(value, list):
            previous.extend(
                str(item.get("content", "")) if isinstance(item, dict) else str(item)
                for item in value
            )
    return (current if current is not None else raw), previous


# --------------------------------------------------------------------------------------------
# Transcript analysis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """One episode of the (possibly concatenated) content; ``index`` None = context only."""

    index: int | None
    timestamp: str | None
    text: str


_EPISODE_HEADER = re.compile(
    r"^\[(?:Episode (\d+)|CONTEXT EPISODE)\] \(timestamp: ([^)]*)\)[ \t]*$", re.MULTILINE
)


def _blocks(content: str) -> list[_Block]:
    headers = list(_EPISODE_HEADER.finditer(content))
    if not headers:
        return [_Block(0, None, content)]
    blocks: list[_Block] = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(content)
        index = int(header.group(1)) if header.group(1) is not None else None
        stamp = header.group(2).strip()
        blocks.append(
            _Block(index, None if stamp == "unknown" else stamp, content[header.end() : end])
        )
    return blocks


@dataclass(frozen=True)
class _Turn:
    role: str  # "user", "assistant" or "named"
    actor: str | None  # entity name of the speaker; None for unattributed text
    text: str


_SPEAKER_LINE = re.compile(r"^\s*([A-Za-z][\w .'-]{0,40}?)\s*:\s?(.*)$")


def _turns(text: str) -> list[_Turn]:
    """Split ``speaker: text`` lines into turns; lines without a speaker continue a turn."""
    text = text.translate(_APOSTROPHES)
    turns: list[_Turn] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SPEAKER_LINE.match(line)
        speaker = match.group(1).strip() if match else None
        if match and speaker is not None and _is_speaker_label(speaker):
            body = match.group(2)
            label = speaker.lower()
            if label in _USER_SPEAKERS:
                turns.append(_Turn("user", "User", body))
            elif label in _ASSISTANT_SPEAKERS:
                turns.append(_Turn("assistant", None, body))
            else:
                turns.append(_Turn("named", speaker, body))
        elif turns:
            last = turns[-1]
            turns[-1] = _Turn(last.role, last.actor, f"{last.text}\n{line}")
        else:
            turns.append(_Turn("text", None, line))
    # Unattributed text is narrated by the user when it speaks in the first person.
    return [
        _Turn("user", "User", t.text) if t.role == "text" and _first_person(t.text) else t
        for t in turns
    ]


def _is_speaker_label(label: str) -> bool:
    lower = label.lower()
    if lower in _USER_SPEAKERS or lower in _ASSISTANT_SPEAKERS:
        return True
    # "Note: ..." or "Reminder: ..." are not speakers; a named speaker looks like a name.
    words = label.split()
    return (
        0 < len(words) <= 3
        and all(w[:1].isupper() for w in words)
        and lower not in _COMMON
        and words[0].lower() not in _COMMON
    )


def _first_person(text: str) -> bool:
    # Case-insensitive: chat users often type "i need to".
    return re.search(r"\b(?:i|i'm|i've|i'll|i'd|my|me|myself)\b", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class _Finding:
    kind: str  # "mood" | "place" | "tension" | "name" | "alias"
    name: str  # the target entity name
    source: str  # the source entity name (speaker, or first name for pair facts)
    fact: str
    relation: str
    episode: int
    sentence: str
    mood: str | None = None
    place_kind: str | None = None
    vibe: str | None = None
    status: str | None = None
    item: str | None = None
    near_place_word: bool = False


@dataclass
class _Analysis:
    actors: list[tuple[str, list[int]]] = field(default_factory=list)
    findings: list[_Finding] = field(default_factory=list)
    timestamps: dict[int, str] = field(default_factory=dict)

    def add_actor(self, name: str, episode: int) -> None:
        for existing, episodes in self.actors:
            if existing.casefold() == name.casefold():
                if episode not in episodes:
                    episodes.append(episode)
                return
        self.actors.append((name, [episode]))


def _analyse(content: str) -> _Analysis:
    analysis = _Analysis()
    for block in _blocks(content):
        if block.index is None:  # [CONTEXT EPISODE]: read for context only, never extracted
            continue
        if block.timestamp:
            analysis.timestamps[block.index] = block.timestamp
        text = block.text
        if _looks_like_json(text):
            text = _json_to_text(text)
        for turn in _turns(text):
            if turn.role == "assistant":
                continue
            if turn.actor is not None:
                analysis.add_actor(turn.actor, block.index)
            for sentence in _split_sentences(turn.text):
                analysis.findings.extend(_sentence_findings(sentence, turn.actor, block.index))
    return analysis


def _looks_like_json(text: str) -> bool:
    stripped = text.strip()
    return stripped[:1] in "{[" and _parse_literal(stripped) is not None


def _json_to_text(text: str) -> str:
    """Flatten a JSON episode to one line per string value (each value is its own sentence)."""
    values: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            values.append(node)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(_parse_literal(text.strip()))
    return "\n".join(_ensure_period(v) for v in values if v.strip())


def _split_sentences(text: str | None) -> list[str]:
    if not text:
        return []
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.translate(_APOSTROPHES))
    return [p.strip() for p in parts if p and p.strip()]


_ADVERB_GROUP = r"(?:(?:" + "|".join(_ADVERBS) + r")\s+)*"
_MOOD_RE = re.compile(
    r"\b(?P<lead>I\s*'m|I\s+am|I\s+was|I\s+feel|I\s+felt|I\s*'ve\s+been|I\s+have\s+been"
    r"|I\s+get|I\s+got|feeling)\s+(?P<neg>not\s+)?"
    r"(?:(?:so|really|very|pretty|quite|super|totally|a\s+bit|a\s+little|kind\s+of|kinda"
    r"|sort\s+of|extremely|incredibly|completely|absolutely|just|fairly|rather|feeling|too"
    r"|still|getting)\s+)*"
    r"(?P<mood>" + "|".join(MOODS) + r")\b",
    re.IGNORECASE,
)
_PLACE_RE = re.compile(
    r"\b(?P<lead>I\s*'m|I\s+am)\s+(?P<pre>(?:(?:currently|now|still|just|already|sitting"
    r"|working|stuck|back|here|out|staying)\s+)*)"
    r"(?P<prep>at|in|on|from)\s+(?:(?P<det>a|an|the|my|this|our)\s+)?"
    r"(?P<phrase>[A-Za-z][\w'-]*(?:\s+[A-Za-z][\w'-]*){0,3})",
    re.IGNORECASE,
)
_NEED_RE = re.compile(
    # The modal must follow the speaker ("I need to"), open the sentence or a comma clause
    # ("Need to buy milk", "..., gotta run"); "remind me to" and "gotta" may appear anywhere.
    r"(?:(?:\bI\s+" + _ADVERB_GROUP + r"|\bI\s*'ve\s+|\bI\s*'m\s+|\bI\s+am\s+|^|(?<=,\s))"
    r"(?P<modal>need\s+to|have\s+to|have\s+got\s+to|got\s+to|gotta|must|should"
    r"|supposed\s+to)|\b(?P<anywhere>remind\s+me\s+to|gotta))\s+(?P<item>[^\n]+)",
    re.IGNORECASE,
)
# The speaker's modal in the third person; the fact is rebuilt as "<actor> <modal> <clause>".
_MODALS_3P: Final[Mapping[str, str]] = {
    "need to": "needs to", "have to": "has to", "have got to": "has got to",
    "got to": "has got to", "gotta": "has to", "must": "must", "should": "should",
    "supposed to": "is supposed to", "remind me to": "wants to be reminded to",
}  # fmt: skip
_WORRY_RE = re.compile(
    r"\b(?P<lead>(?:I\s*'m\s+|I\s+am\s+)?(?:(?:so|really|very|a\s+bit|kind\s+of|still|quite)"
    r"\s+)*(?P<verb>worried|anxious|nervous|stressed|concerned))\s+about\s+(?P<item>[^\n]+)",
    re.IGNORECASE,
)
_WAIT_RE = re.compile(
    r"\b(?P<lead>(?:I\s*'m\s+|I\s+am\s+)?(?:still\s+)?waiting)\s+(?P<prep>on|for)\s+"
    r"(?P<item>[^\n]+)",
    re.IGNORECASE,
)
_DONE_RE = re.compile(
    # Chat often drops the subject: "Booked the dentist!" counts like "I booked the dentist".
    r"(?:\bI\s+"
    + _ADVERB_GROUP
    + r"|^)(?P<verb>"
    + "|".join(sorted((re.escape(k) for k in _COMPLETIONS), key=len, reverse=True))
    + r")\s+(?P<item>[^\n]+)",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(
    r"[.!?;\n]|,\s|\s(?:but|because|so|although|though|while|whereas|since)\s"
    r"|\sand\s+(?:I|I'm|I've|my|then|it|it's)\b",
    re.IGNORECASE,
)
# Words that end the *name* of an open item (but stay in the fact): deadlines and reasons.
_ITEM_STOPS: Final[frozenset[str]] = _words(
    "before by until till tomorrow today tonight asap soon later first again this next "
    "because since when while after or then already anymore"
)
_NAME_RUN = re.compile(r"[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
_PRONOUN_ITEMS: Final[frozenset[str]] = _words(
    "it this that them these those him her you we they he she i us"
)


def _clause(text: str) -> str:
    match = _CLAUSE_BREAK.search(text)
    return (text[: match.start()] if match else text).strip().rstrip(",:")


def _item_name(clause: str) -> str:
    """The name part of an open item: the clause up to a deadline/reason, at most 6 words."""
    words: list[str] = []
    tokens = clause.split()
    while tokens and tokens[0].lower() in _ADVERBS:  # "should probably call mom"
        tokens = tokens[1:]
    if tokens and tokens[0].lower() in {"not", "never", "n't"}:
        return ""  # "I did not ..." closes nothing
    if tokens and (tokens[0].lower() in _PRONOUN_ITEMS or tokens[0].lower() in {"be", "been"}):
        return ""  # "sent it to Priya", "must be nice": no item worth naming
    for i, word in enumerate(tokens):
        lower = word.lower().strip(",")
        if lower in _ITEM_STOPS or lower in _TIME_WORDS:
            break
        # "on Monday", "at 5pm", "in the morning" are times, not part of the item.
        if lower in {"on", "at", "in"} and i + 1 < len(tokens):
            nxt = tokens[i + 1].lower()
            if (
                nxt in _TIME_WORDS
                or nxt[:1].isdigit()
                or (nxt == "the" and i + 2 < len(tokens) and tokens[i + 2].lower() in _TIME_WORDS)
            ):
                break
        words.append(word.strip(","))
        if len(words) == 6:
            break
    return " ".join(words).strip()


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _qualify_my(text: str, actor: str) -> str:
    """Entity names are read without the speaker: "renew my passport" → "renew User's passport"."""
    return re.sub(r"\b[Mm]y\b", f"{actor}'s", text)


def _object_name(item: str, actor: str | None) -> str:
    """Name for something worried about / waited on: drop the article, qualify "my"."""
    words = item.split()
    if words and words[0].lower() in {"the", "a", "an"}:
        words = words[1:]
    elif words and words[0].lower() == "my":
        words = [f"{actor or 'User'}'s", *words[1:]]
    return _sentence_case(" ".join(words))


def _sentence_findings(sentence: str, actor: str | None, episode: int) -> list[_Finding]:
    findings: list[_Finding] = []
    speaker = actor or "User"
    if actor is not None:
        findings.extend(_mood_findings(sentence, actor, episode))
        findings.extend(_place_findings(sentence, actor, episode))
        findings.extend(_tension_findings(sentence, actor, episode))
        if actor == "User":
            name = detect_user_name(sentence)
            if name is not None:
                findings.append(
                    _Finding(
                        "alias",
                        name,
                        actor,
                        f"User's name is {name}",
                        "IS_NAMED",
                        episode,
                        sentence,
                    )
                )
    taken = {f.name.casefold() for f in findings}
    names = [n for n in _capitalised_names(sentence) if n[0].casefold() not in taken]
    names = [n for n in names if n[0].casefold() != speaker.casefold()]
    first_person = _first_person(sentence)
    if actor is not None and first_person:
        fact = _limit_fact(_third_person(_strip_opener(sentence), actor))
        for name, near_place in names:
            findings.append(
                _Finding(
                    "name",
                    name,
                    actor,
                    fact or f"{actor} mentioned {name}",
                    "MENTIONED",
                    episode,
                    sentence,
                    near_place_word=near_place,
                )
            )
    elif names:
        # Third-person sentence: link the names to each other, and the speaker to the first.
        first, first_near = names[0]
        for other, near in names[1:]:
            findings.append(
                _Finding(
                    "name",
                    other,
                    first,
                    _limit_fact(sentence.rstrip(".!?")),
                    _relation_between(sentence, first, other),
                    episode,
                    sentence,
                    near_place_word=near,
                )
            )
        if actor is not None:
            said = _strip_opener(sentence).rstrip(".!?")
            if said.split() and said.split()[0].lower() in _COMMON:
                said = said[:1].lower() + said[1:]
            fact = _limit_fact(f"{actor} mentioned that {said}")
            findings.append(
                _Finding(
                    "name",
                    first,
                    actor,
                    fact or f"{actor} mentioned {first}",
                    "MENTIONED",
                    episode,
                    sentence,
                    near_place_word=first_near,
                )
            )
        elif len(names) == 1:
            findings.append(
                _Finding("name", first, "", "", "", episode, sentence, near_place_word=first_near)
            )
    return findings


def _mood_findings(sentence: str, actor: str, episode: int) -> list[_Finding]:
    out: list[_Finding] = []
    for match in _MOOD_RE.finditer(sentence):
        if match.group("neg"):
            continue  # "I'm not tired": no state worth recording
        mood = match.group("mood").lower()
        tail = _clause(sentence[match.end() :])
        first = tail.split()[0].lower() if tail.split() else ""
        keep_tail = first in {
            "about",
            "with",
            "because",
            "after",
            "from",
            "by",
            "at",
            "since",
            "of",
            "over",
            "today",
            "tonight",
            "this",
        }
        tail_3p = _third_person(tail, actor, capitalise=False) if keep_tail else ""
        fact = f"{actor} feels {mood}" + (f" {tail_3p}" if tail_3p else "")
        out.append(
            _Finding(
                "mood",
                mood.capitalize(),
                actor,
                fact,
                "FEELS",
                episode,
                sentence,
                mood=mood.capitalize(),
            )
        )
    return out


def _place_findings(sentence: str, actor: str, episode: int) -> list[_Finding]:
    out: list[_Finding] = []
    for match in _PLACE_RE.finditer(sentence):
        prep = match.group("prep").lower()
        if prep == "from" and "working" not in match.group("pre").lower():
            continue  # "I'm from Texas" is origin, not where the user is now
        det = match.group("det")
        words: list[str] = []
        for word in match.group("phrase").split():
            lower = word.lower()
            if lower in _COMMON and lower not in _BARE_PLACES and lower not in _VIBES:
                break
            words.append(word)
        if not words:
            continue
        kind = words[-1].lower()
        if kind in _NON_PLACES or kind in _VIBES or kind in _TIME_WORDS:
            continue
        if det is None and kind not in _BARE_PLACES:
            continue  # "I'm in love", "I'm on it": a place needs an article or a known noun
        phrase_end = match.start("phrase") + len(" ".join(words))
        # Re-join from the original text so the fact keeps the speaker's words.
        original = " ".join(sentence[match.start() : phrase_end].split())
        vibe = next((w.capitalize() for w in words if w.lower() in _VIBES), None)
        if vibe is None:
            vibe = next(
                (w.capitalize() for w in re.findall(r"[A-Za-z]+", sentence) if w.lower() in _VIBES),
                None,
            )
        out.append(
            _Finding(
                "place",
                kind.capitalize(),
                actor,
                _third_person(original, actor),
                "IS_AT",
                episode,
                sentence,
                place_kind=kind.capitalize(),
                vibe=vibe,
            )
        )
    return out


def _tension_findings(sentence: str, actor: str, episode: int) -> list[_Finding]:
    out: list[_Finding] = []
    for match in _NEED_RE.finditer(sentence):
        clause = _clause(match.group("item"))
        item = _item_name(clause)
        if not item:
            continue
        said = match.group("modal") or match.group("anywhere")
        modal = _MODALS_3P[" ".join(said.lower().split())]
        fact = f"{actor} {modal} {_third_person(clause, actor, capitalise=False)}"
        name = _sentence_case(_qualify_my(item, actor))
        out.append(
            _Finding(
                "tension",
                name,
                actor,
                fact,
                "NEEDS_TO",
                episode,
                sentence,
                status="unresolved",
                item=name,
            )
        )
    for match in _WORRY_RE.finditer(sentence):
        clause = _clause(match.group("item"))
        item = _item_name(clause)
        if not item:
            continue
        verb = match.group("verb").lower()
        name = _object_name(item, actor)
        fact = _third_person(f"{actor} is {verb} about {clause}", actor)
        out.append(
            _Finding(
                "tension",
                name,
                actor,
                fact,
                "IS_WORRIED_ABOUT",
                episode,
                sentence,
                status="unresolved",
                item=name,
            )
        )
    for match in _WAIT_RE.finditer(sentence):
        clause = _clause(match.group("item"))
        item = _item_name(clause)
        if not item:
            continue
        name = _object_name(item, actor)
        fact = _third_person(f"{actor} is waiting {match.group('prep').lower()} {clause}", actor)
        out.append(
            _Finding(
                "tension",
                name,
                actor,
                fact,
                "IS_WAITING_ON",
                episode,
                sentence,
                status="unresolved",
                item=name,
            )
        )
    for match in _DONE_RE.finditer(sentence):
        clause = _clause(match.group("item"))
        item = _item_name(clause)
        if not item:
            continue
        base = _COMPLETIONS[" ".join(match.group("verb").lower().split())]
        name = _sentence_case(f"{base} {item}")
        fact = _third_person(f"I {match.group('verb').lower()} {clause}", actor)
        out.append(
            _Finding(
                "tension",
                name,
                actor,
                fact,
                "COMPLETED",
                episode,
                sentence,
                status="resolved",
                item=name,
            )
        )
    return out


def _capitalised_names(sentence: str) -> list[tuple[str, bool]]:
    """Runs of capitalised words, minus sentence openers and fillers at either edge.

    Returns (name, preceded by a place preposition) pairs in order of appearance.
    """
    names: list[tuple[str, bool]] = []
    for match in _NAME_RUN.finditer(sentence):
        tokens = match.group(0).split()
        # Split the run at words that are never part of a name (I, weekdays, moods, ...).
        segments: list[list[str]] = [[]]
        for token in tokens:
            bare = re.sub(r"'s$", "", token)
            if bare.lower() in {"i", "i'm", "i've", "i'll", "i'd"} or bare.lower() in _TIME_WORDS:
                segments.append([])
            else:
                segments[-1].append(bare)
        at_start = not sentence[: match.start()].strip(" \t\"'([-")
        for position, segment in enumerate(segments):
            if position == 0 and at_start and segment and _opener_like(segment[0]):
                segment = segment[1:]  # "Honestly, ..." opens a sentence; "Ashley ..." may
            while segment and segment[0].lower() in _COMMON:
                segment = segment[1:]
            while segment and segment[-1].lower() in _COMMON:
                segment = segment[:-1]
            if not segment:
                continue
            name = " ".join(segment).strip("'-")
            if len(name) < 2 or name.casefold() in {n.casefold() for n, _ in names}:
                continue
            before = sentence[: sentence.find(segment[0], match.start())].split()
            near_place = bool(before) and before[-1].lower() in {
                "in",
                "at",
                "to",
                "from",
                "near",
                "visiting",
                "visit",
                "around",
            }
            names.append((name, near_place))
    return names


def _opener_like(word: str) -> bool:
    """Sentence openers the word list misses: -ly adverbs (but not Ashley or Emily) and the
    past-tense verbs of subject-less chat ("Finished the report!")."""
    lower = word.lower()
    suffixes = ("ally", "tly", "ously", "fully", "ably", "ibly", "ately", "ently", "antly")
    return lower.endswith(suffixes) or lower in _COMPLETIONS or lower in _IRREGULAR_PAST


def _relation_between(sentence: str, first: str, other: str) -> str:
    """SCREAMING_SNAKE_CASE from the words between two names ("moved to" → MOVED_TO)."""
    start = sentence.find(first)
    end = sentence.find(other, start + len(first)) if start >= 0 else -1
    if start < 0 or end < 0:
        return "RELATED_TO"
    between = [
        w.lower()
        for w in re.findall(r"[A-Za-z]+", sentence[start + len(first) : end])
        if w.lower() not in {"the", "a", "an"}
    ]
    if not between or between in (["and"], ["or"], ["with"]) or len(between) > 3:
        return "RELATED_TO"
    return "_".join(between).upper()


def _third_person(text: str, actor: str, *, capitalise: bool = True) -> str:
    """Rewrite the speaker's first person into the third ("I need" → "User needs")."""
    t = text.translate(_APOSTROPHES).strip()
    t = re.sub(r"\b[Ii]\s*'m\b|\b[Ii] am\b", f"{actor} is", t)
    t = re.sub(r"\b[Ii]\s*'ve\b", f"{actor} has", t)
    t = re.sub(r"\b[Ii]\s*'ll\b", f"{actor} will", t)
    t = re.sub(r"\b[Ii]\s*'d\b", f"{actor} would", t)
    t = re.sub(r"\b[Ii] (?:don't|do not)\b", f"{actor} doesn't", t)
    t = re.sub(r"\b[Ii]\b(\s+" + _ADVERB_GROUP + r")([A-Za-z]+)\b", _conjugator(actor), t)
    t = re.sub(r"\b[Ii]\b", actor, t)
    t = re.sub(r"\b[Mm]y\b|\b[Mm]ine\b", f"{actor}'s", t)
    t = re.sub(r"\b[Mm]yself\b", "themselves", t)
    t = re.sub(r"\b[Mm]e\b", actor, t)
    return _sentence_case(t) if capitalise else t


def _conjugator(actor: str) -> Callable[[re.Match[str]], str]:
    def conjugate(match: re.Match[str]) -> str:
        gap, verb = match.group(1), match.group(2)
        return f"{actor}{gap}{_third_person_verb(verb)}"

    return conjugate


def _third_person_verb(verb: str) -> str:
    lower = verb.lower()
    irregular = {"am": "is", "have": "has", "do": "does", "go": "goes", "be": "is"}
    if lower in irregular:
        return irregular[lower]
    past = lower.endswith("ed") and not lower.endswith("eed")  # "booked", but not "need"
    if past or lower in _IRREGULAR_PAST or lower in _NO_CONJUGATION or lower.endswith("n't"):
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", lower):
        return verb + "es"
    if re.search(r"[^aeiou]y$", lower):
        return verb[:-1] + "ies"
    return verb + "s"


_OPENERS = re.compile(
    r"^(?:(?:so|and|but|well|oh|anyway|also|then|ok|okay|yeah|hey|hi|um|uh|btw|honestly)\b[,!]?\s+)+",
    re.IGNORECASE,
)


def _strip_opener(sentence: str) -> str:
    """Drop conversational openers so a fact starts with its subject ("So I met Ashley")."""
    stripped = _OPENERS.sub("", sentence.strip())
    return stripped or sentence


def _limit_fact(text: str, limit: int = 240) -> str:
    text = " ".join(text.split()).rstrip(".!?")
    return text if len(text) <= limit else ""


def _norm(text: str) -> str:
    return " ".join(text.translate(_APOSTROPHES).casefold().split()).rstrip(".!?")


def _ensure_period(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else f"{text}."


def _is_trivial(sentence: str) -> bool:
    words = re.findall(r"[A-Za-z']+", sentence)
    if not words:
        return True
    content = [w for w in words if w.lower() not in _COMMON]
    return len(words) < 3 and not content


def _plausible_name(word: str) -> bool:
    lower = word.lower()
    return (
        lower not in _COMMON
        and lower not in _VIBES
        and lower not in _BARE_PLACES
        and not lower.endswith("ing")
        and re.fullmatch(r"[A-Za-z][A-Za-z'-]*", word) is not None
    )


def _truncate_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 3)]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return (cut.rstrip(" ,;:") + "...")[:limit]


def _truncate_sentences(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for sentence in _split_sentences(text):
        if len(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else _truncate_words(text, limit)


# --------------------------------------------------------------------------------------------
# Entity typing
# --------------------------------------------------------------------------------------------

_KIND_TYPE_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "mood": ("mentalstate", "mood", "emotion", "feeling"),
    "tension": ("tension", "task", "todo", "openloop", "concern", "worry"),
    "place": ("environment", "setting", "place", "location", "venue"),
    "location": ("location", "place", "city", "country"),
    "person": ("person", "user", "human", "individual"),
}


def _type_for(types: Sequence[_EntityType], kind: str) -> int | None:
    wanted = _KIND_TYPE_NAMES.get(kind, ())
    for candidate in wanted:
        for entity_type in types:
            if entity_type.name.casefold().replace("_", "") == candidate:
                return entity_type.type_id
    return None


def _generic_type(types: Sequence[_EntityType]) -> int | None:
    for entity_type in types:
        if entity_type.name == "Entity":
            return entity_type.type_id
    return None  # "Entity" was excluded: generic names are not wanted


def _finding_type(finding: _Finding, types: Sequence[_EntityType]) -> int | None:
    if finding.kind in {"mood", "place", "tension"}:
        # Narrative kinds only exist when their type is offered; Graphiti's default rules
        # forbid feelings and actions as plain entities.
        return _type_for(types, finding.kind)
    if finding.kind == "alias":
        return _first_id(_type_for(types, "person"), _generic_type(types))
    if finding.near_place_word:
        return _first_id(_type_for(types, "location"), _generic_type(types))
    return _generic_type(types)


def _first_id(*ids: int | None) -> int | None:
    # Type ids start at 0, so `a or b` would skip a valid id.
    return next((i for i in ids if i is not None), None)


@dataclass
class _Entity:
    name: str
    type_id: int
    episodes: list[int]


def _entities(analysis: _Analysis, types: Sequence[_EntityType]) -> list[_Entity]:
    out: list[_Entity] = []
    index: dict[str, _Entity] = {}

    def add(name: str, type_id: int | None, episode: int) -> None:
        if type_id is None or not name.strip():
            return
        key = name.casefold()
        if key in index:
            if episode not in index[key].episodes:
                index[key].episodes.append(episode)
            return
        entity = _Entity(name, type_id, [episode])
        index[key] = entity
        out.append(entity)

    # Speakers first: Graphiti's prompt asks for the speaker as the first entity.
    speaker_type = _first_id(_type_for(types, "person"), _generic_type(types))
    for actor, episodes in analysis.actors:
        for episode in episodes:
            add(actor, speaker_type, episode)
    for finding in analysis.findings:
        if finding.source:  # the source comes first in the sentence ("Ashley moved to Berlin")
            add(finding.source, _generic_type(types), finding.episode)
        add(finding.name, _finding_type(finding, types), finding.episode)
    return out


# --------------------------------------------------------------------------------------------
# Handlers, one per Graphiti response model
# --------------------------------------------------------------------------------------------


def _episode_content(prompt: _Prompt) -> str:
    for tag in ("CURRENT MESSAGE", "CURRENT_MESSAGE", "CURRENT MESSAGES", "TEXT", "JSON"):
        value = prompt.section(tag)
        if value is not None:
            return value
    return ""


def _extracted_entities(prompt: _Prompt) -> dict[str, Any]:
    types = _entity_types(prompt)
    entities = _entities(_analyse(_episode_content(prompt)), types)
    return {
        "extracted_entities": [
            {"name": e.name, "entity_type_id": e.type_id, "episode_indices": sorted(e.episodes)}
            for e in entities
        ]
    }


def _combined_extraction(prompt: _Prompt) -> dict[str, Any]:
    types = _entity_types(prompt)
    analysis = _analyse(_episode_content(prompt))
    entities = _entities(analysis, types)
    names = {e.name.casefold(): e.name for e in entities}
    edges = _edges_for(analysis, names, reference=None)
    return {
        "extracted_entities": [{"name": e.name, "entity_type_id": e.type_id} for e in entities],
        "edges": [
            {k: v for k, v in edge.items() if k not in {"valid_at", "invalid_at"}} for edge in edges
        ],
    }


def _extracted_edges(prompt: _Prompt) -> dict[str, Any]:
    content = _episode_content(prompt)
    analysis = _analyse(content)
    listed = _dict_list(_parse_literal(prompt.section("ENTITIES")))
    names = {str(e["name"]).casefold(): str(e["name"]) for e in listed if e.get("name")}
    reference = (prompt.section("REFERENCE_TIME") or "").split("#")[0].strip() or None
    edges = _edges_for(analysis, names, reference)
    # Entities that came from elsewhere (a dedupe rename, a real model) still get a fact
    # when the speaker and the name both appear in this message.
    covered = {e["target_entity_name"].casefold() for e in edges}
    speaker = next((names[a.casefold()] for a, _ in analysis.actors if a.casefold() in names), None)
    if speaker is not None:
        lowered = content.casefold()
        actors = {a.casefold() for a, _ in analysis.actors}
        for key, name in names.items():
            if key in covered or key in actors or key not in lowered:
                continue
            edges.append(
                {
                    "source_entity_name": speaker,
                    "target_entity_name": name,
                    "relation_type": "MENTIONED",
                    "fact": f"{speaker} mentioned {name}",
                    "valid_at": _iso_z(reference),
                    "invalid_at": None,
                    "episode_indices": [0],
                }
            )
    return {"edges": edges}


def _edges_for(
    analysis: _Analysis, names: Mapping[str, str], reference: str | None
) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    for finding in analysis.findings:
        if not finding.fact or not finding.source:
            continue
        source = names.get(finding.source.casefold())
        target = names.get(finding.name.casefold())
        if source is None or target is None or source.casefold() == target.casefold():
            continue  # names must come from ENTITIES, and an edge needs two distinct ends
        key = (source.casefold(), target.casefold(), _norm(finding.fact))
        if key in by_key:
            if finding.episode not in by_key[key]["episode_indices"]:
                by_key[key]["episode_indices"].append(finding.episode)
            continue
        stamp = analysis.timestamps.get(finding.episode) or reference
        valid_at, invalid_at = _timestamps_for(finding.fact, stamp)
        edge = {
            "source_entity_name": source,
            "target_entity_name": target,
            "relation_type": finding.relation or "RELATED_TO",
            "fact": finding.fact,
            "valid_at": valid_at,
            "invalid_at": invalid_at,
            "episode_indices": [finding.episode],
        }
        by_key[key] = edge
        edges.append(edge)
    return edges


def _node_key(name: Any) -> str:
    return " ".join(str(name).casefold().split()).strip(".,!?;:'\"")


def _node_resolutions(prompt: _Prompt) -> dict[str, Any]:
    extracted = _dict_list(_parse_literal(prompt.section("ENTITIES")))
    existing = _dict_list(_parse_literal(prompt.section("EXISTING ENTITIES")))
    resolutions = []
    for position, entity in enumerate(extracted):
        entity_id = entity.get("id", position)
        name = str(entity.get("name", ""))
        resolutions.append(
            {
                "id": entity_id if isinstance(entity_id, int) else position,
                "name": name,
                "duplicate_candidate_id": _exact_candidate(name, existing),
            }
        )
    return {"entity_resolutions": resolutions}


def _node_duplicate(prompt: _Prompt) -> dict[str, Any]:
    new = _parse_literal(prompt.section("NEW ENTITY"))
    existing = _dict_list(_parse_literal(prompt.section("EXISTING ENTITIES")))
    name = str(new.get("name", "")) if isinstance(new, dict) else str(new or "")
    entity_id = new.get("id", 0) if isinstance(new, dict) else 0
    return {
        "id": entity_id if isinstance(entity_id, int) else 0,
        "name": name,
        "duplicate_candidate_id": _exact_candidate(name, existing),
    }


def _exact_candidate(name: str, existing: Sequence[Mapping[str, Any]]) -> int:
    """Only exact (case- and space-insensitive) name matches count as duplicates."""
    key = _node_key(name)
    for position, candidate in enumerate(existing):
        if key and _node_key(candidate.get("name", "")) == key:
            candidate_id = candidate.get("candidate_id", position)
            return candidate_id if isinstance(candidate_id, int) else position
    return -1


def _edge_duplicate(prompt: _Prompt) -> dict[str, Any]:
    existing = _dict_list(_parse_literal(prompt.section("EXISTING FACTS")))
    candidates = _dict_list(_parse_literal(prompt.section("FACT INVALIDATION CANDIDATES")))
    new_fact = prompt.section("NEW FACT") or ""
    new_key = _norm(new_fact)
    duplicates = [
        int(f["idx"])
        for f in existing
        if isinstance(f.get("idx"), int) and _norm(str(f.get("fact", ""))) == new_key
    ]
    # The one contradiction we can see: "User booked the dentist" closes "User needs to book
    # the dentist ...". Anything else is left alone (Graphiti over-invalidates already, #1728).
    contradicted = [
        int(f["idx"])
        for f in [*existing, *candidates]
        if isinstance(f.get("idx"), int) and _closes(new_fact, str(f.get("fact", "")))
    ]
    return {"duplicate_facts": duplicates, "contradicted_facts": contradicted}


def _closes(new_fact: str, old_fact: str) -> bool:
    done = re.search(
        r"\b(?P<verb>" + "|".join(re.escape(k) for k in _COMPLETIONS) + r")\s+(?P<item>.+)$",
        new_fact,
        re.IGNORECASE,
    )
    if not done:
        return False
    base = _COMPLETIONS[" ".join(done.group("verb").lower().split())]
    item = _item_name(_clause(done.group("item"))).casefold()
    wanted = f"{base} {item}"
    open_loop = re.search(r"\b(?:needs to|has to|must|should|got to)\s+(.+)$", old_fact, re.I)
    return open_loop is not None and _item_name(_clause(open_loop.group(1))).casefold() == wanted


def _edge_timestamps(prompt: _Prompt) -> dict[str, Any]:
    fact = prompt.section("FACT") or ""
    valid_at, invalid_at = _timestamps_for(fact, prompt.section("REFERENCE TIME"))
    return {"valid_at": valid_at, "invalid_at": invalid_at}


def _batch_edge_timestamps(prompt: _Prompt) -> dict[str, Any]:
    facts = _dict_list(_parse_literal(prompt.section("FACTS")))
    stamps = []
    for item in facts:
        valid_at, invalid_at = _timestamps_for(
            str(item.get("fact", "")), str(item.get("reference_time") or "")
        )
        stamps.append({"valid_at": valid_at, "invalid_at": invalid_at})
    return {"timestamps": stamps}


def _iso_z(value: str | None) -> str | None:
    moment = _parse_time(value)
    return _format_time(moment) if moment else None


def _parse_time(value: str | None) -> datetime | None:
    if not value or value == "unknown":
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timestamps_for(fact: str, reference: str | None) -> tuple[str | None, str | None]:
    """Graphiti's rule: ongoing facts and plans are valid from the reference time.

    Relative expressions shift ``valid_at`` back ("yesterday", "last week", "3 days ago");
    an explicit ending ("no longer", "stopped", "used to") closes the fact at that time.
    """
    moment = _parse_time(reference)
    if moment is None:
        return None, None
    lower = fact.lower()
    shift = timedelta()
    ago = re.search(r"\b(\d+)\s+(day|week)s?\s+ago\b", lower)
    if ago:
        shift = timedelta(days=int(ago.group(1)) * (7 if ago.group(2) == "week" else 1))
    elif "yesterday" in lower:
        shift = timedelta(days=1)
    elif "last week" in lower:
        shift = timedelta(days=7)
    elif "last month" in lower:
        shift = timedelta(days=30)
    valid = moment - shift
    ended = re.search(r"\b(?:no longer|not anymore|stopped|quit|used to)\b", lower) is not None
    return _format_time(valid), (_format_time(moment) if ended else None)


def _summaries_for(
    names: Sequence[str], content: str, previous: Sequence[str]
) -> dict[str, list[str]]:
    """Sentences about each name: its facts in this content, then sentences naming it."""
    analysis = _analyse(content)
    out: dict[str, list[str]] = {}
    for name in names:
        key = name.casefold()
        lines: list[str] = []
        for finding in analysis.findings:
            if finding.fact and key in {finding.name.casefold(), finding.source.casefold()}:
                lines.append(_ensure_period(finding.fact))
        if not lines:
            for text in [content, *previous]:
                for turn in _turns(text):
                    if turn.role == "assistant":
                        continue
                    for sentence in _split_sentences(turn.text):
                        if key in sentence.casefold():
                            rewritten = _third_person(sentence, turn.actor or "User")
                            lines.append(_ensure_period(rewritten))
        out[name] = lines
    return out


def _merge_summary(existing: str, lines: Sequence[str], limit: int) -> str:
    parts = _split_sentences(existing)
    seen = {_norm(p) for p in parts}
    for line in lines:
        if _norm(line) not in seen:
            seen.add(_norm(line))
            parts.append(line)
    return _truncate_sentences(" ".join(parts), limit)


def _summarized_entities(prompt: _Prompt) -> dict[str, Any]:
    tag = "EPISODES" if prompt.section("EPISODES") is not None else "MESSAGES"
    content, previous = _messages_section(prompt, tag)
    entities = _dict_list(_parse_literal(prompt.section("ENTITIES")))
    names = [str(e.get("name", "")) for e in entities if e.get("name")]
    found = _summaries_for(names, content, previous)
    summaries = []
    for entity in entities:
        name = str(entity.get("name", ""))
        if not name:
            continue
        merged = _merge_summary(
            str(entity.get("summary") or ""), found.get(name, []), prompt.max_chars
        )
        if merged:
            summaries.append({"name": name, "summary": merged})
    return {"summaries": summaries}


def _summary(prompt: _Prompt) -> dict[str, Any]:
    limit = prompt.max_chars
    if "Summaries:" in prompt.user:  # summarize_pair
        listed = _json_after(prompt.user, "Summaries:")
        texts = [str(s.get("summary", "")) for s in _dict_list(listed)]
        return {"summary": _merge_summary("", [t for t in texts if t], limit)}
    content, previous = _messages_section(prompt)  # summarize_context
    name = (prompt.section("ENTITY") or "").strip()
    existing = prompt.section("ENTITY CONTEXT") or ""
    lines = _summaries_for([name], content, previous).get(name, []) if name else []
    summary = _merge_summary(existing, lines, limit)
    return {"summary": summary or (f"{name}." if name else "")}


def _json_after(text: str, marker: str) -> Any:
    rest = text[text.find(marker) + len(marker) :].lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None
    return value


def _summary_description(prompt: _Prompt) -> dict[str, Any]:
    summary = _json_after(prompt.user, "Summary:")
    text = summary if isinstance(summary, str) else ""
    first = _split_sentences(text)[0] if _split_sentences(text) else ""
    if not first:
        return {"description": "An empty summary."}
    return {"description": _truncate_words(f"Summary of facts such as: {first}", 200)}


def _saga_summary(prompt: _Prompt) -> dict[str, Any]:
    messages = prompt.section("MESSAGES") or ""
    existing = prompt.section("EXISTING_KNOWLEDGE")
    lines = [] if messages == "(no messages)" else re.split(r"\n---\n|\n", messages)
    summary = summarize_transcript(existing, lines, prompt.max_chars)
    return {"summary": summary or (existing or "No durable facts.")}


def _query_expansion(prompt: _Prompt) -> dict[str, Any]:
    question = _parse_literal(prompt.section("QUESTION"))
    text = question if isinstance(question, str) else (prompt.section("QUESTION") or "")
    return {"query": _third_person(text, "Alice") if text else ""}


def _qa_response(prompt: _Prompt) -> dict[str, Any]:
    question = prompt.section("QUESTION") or ""
    facts = _parse_literal(prompt.section("FACTS"))
    candidates = [str(f) for f in facts] if isinstance(facts, list) else []
    best = max(candidates, key=lambda f: lexical_relevance(question, f), default="")
    return {"ANSWER": best or "I don't know."}


def _eval_response(prompt: _Prompt) -> dict[str, Any]:
    answer = prompt.section("ANSWER") or ""
    response = prompt.section("RESPONSE") or ""
    score = lexical_relevance(answer, response)
    return {"is_correct": score >= 0.5, "reasoning": f"Lexical overlap {score:.2f} (offline)."}


def _eval_add_episode(prompt: _Prompt) -> dict[str, Any]:
    baseline = prompt.section("BASELINE") or ""
    candidate = prompt.section("CANDIDATE") or ""
    worse = len(candidate.strip()) < len(baseline.strip()) // 2
    return {"candidate_is_worse": worse, "reasoning": "Compared extraction sizes (offline)."}


def _rolling_summary(prompt: _Prompt) -> dict[str, Any]:
    """Synapse's own summariser prompt (service/graph.py): fold new lines into the summary."""
    previous = (prompt.section("PREVIOUS SUMMARY") or "").strip() or None
    lines = [line for line in (prompt.section("NEW LINES") or "").splitlines() if line.strip()]
    limit = re.search(r"at most (\d+) characters", prompt.user)
    name = None
    for line in lines:
        if line.startswith("user:"):
            name = detect_user_name(line.removeprefix("user:")) or name
    summary = summarize_transcript(previous, lines, int(limit.group(1)) if limit else 1000)
    return {"summary": summary, "user_name": name}


_HANDLERS: Final[Mapping[str, Callable[[_Prompt], dict[str, Any]]]] = {
    "RollingSummary": _rolling_summary,
    "ExtractedEntities": _extracted_entities,
    "CombinedExtraction": _combined_extraction,
    "ExtractedEdges": _extracted_edges,
    "NodeResolutions": _node_resolutions,
    "NodeDuplicate": _node_duplicate,
    "EdgeDuplicate": _edge_duplicate,
    "EdgeTimestamps": _edge_timestamps,
    "BatchEdgeTimestamps": _batch_edge_timestamps,
    "SummarizedEntities": _summarized_entities,
    "Summary": _summary,
    "SummaryDescription": _summary_description,
    "SagaSummary": _saga_summary,
    "QueryExpansion": _query_expansion,
    "QAResponse": _qa_response,
    "EvalResponse": _eval_response,
    "EvalAddEpisodeResults": _eval_add_episode,
}


# --------------------------------------------------------------------------------------------
# Custom entity / edge types: fill the schema's properties by field-name heuristics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AttributeContext:
    entity_name: str
    labels: Sequence[str]
    existing: Mapping[str, Any]
    text: str
    findings: Sequence[_Finding]


def _custom_attributes(prompt: _Prompt, json_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if not json_schema:
        return {}
    properties = json_schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    required = set(json_schema.get("required") or [])
    ctx = _attribute_context(prompt)
    result: dict[str, Any] = {}
    for field_name, prop in properties.items():
        spec: Mapping[str, Any] = prop if isinstance(prop, Mapping) else {}
        guess = _guess_attribute(str(field_name), ctx)
        if guess is None:
            guess = ctx.existing.get(str(field_name))
        value = _coerce(guess, spec)
        if value is None and (field_name in required and not _nullable(spec)):
            value = _type_default(spec)
        result[str(field_name)] = value
    return result


def _attribute_context(prompt: _Prompt) -> _AttributeContext:
    entity = _parse_literal(prompt.section("ENTITY"))
    if isinstance(entity, dict):  # node attributes: extract_nodes.extract_attributes
        content, _ = _messages_section(prompt)
        name = str(entity.get("name", ""))
        attributes = entity.get("attributes")
        existing: Mapping[str, Any] = attributes if isinstance(attributes, dict) else {}
        raw_labels = entity.get("entity_types")
        labels = [str(x) for x in raw_labels] if isinstance(raw_labels, list) else []
    else:
        fact = prompt.section("FACT")  # edge attributes: extract_edges.extract_attributes
        attrs = _parse_literal(prompt.section("EXISTING ATTRIBUTES"))
        content = fact if fact is not None else _episode_content(prompt)
        raw_entity = prompt.section("ENTITY") or ""
        match = re.search(r"""['"]name['"]\s*:\s*['"]([^'"]+)['"]""", raw_entity)
        name = match.group(1) if match else ""
        existing = attrs if isinstance(attrs, dict) else {}
        labels = []
    return _AttributeContext(name, labels, existing, content, _analyse(content).findings)


def _own_finding(ctx: _AttributeContext, kind: str) -> _Finding | None:
    """The finding about this entity, else the first finding of that kind in the text."""
    key = ctx.entity_name.casefold()
    same_kind = [f for f in ctx.findings if f.kind == kind]
    return next((f for f in same_kind if f.name.casefold() == key), None) or (
        same_kind[0] if same_kind else None
    )


def _guess_attribute(field_name: str, ctx: _AttributeContext) -> Any:
    f = field_name.lower()
    name = ctx.entity_name
    if f in {"mood", "feeling", "emotion", "mood_word"}:
        if name.lower() in MOODS:
            return name.capitalize()
        mood = _own_finding(ctx, "mood")
        return mood.mood if mood else None
    if f in {"energy", "energy_level", "energylevel"}:
        word = name.lower() if name.lower() in MOODS else None
        if word is None:
            mood = _own_finding(ctx, "mood")
            word = mood.mood.lower() if mood and mood.mood else None
        return _ENERGY.get(word) if word else None
    if f in {"status", "state", "resolution", "resolution_status"}:
        return _tension_status(ctx)
    if f in {"description", "item", "task", "title", "topic", "what", "open_item"}:
        tension = _own_finding(ctx, "tension")
        if tension is not None and tension.name.casefold() == name.casefold():
            return tension.item
        return _sentence_case(name) if name else None
    if f in {"location_type", "place_type", "place", "location", "venue", "kind", "place_kind"}:
        place = _own_finding(ctx, "place")
        return place.place_kind if place else None
    if f in {"vibe", "atmosphere", "ambience", "ambiance", "noise_level"}:
        place = _own_finding(ctx, "place")
        if place and place.vibe:
            return place.vibe
        return next(
            (w.capitalize() for w in re.findall(r"[A-Za-z]+", ctx.text) if w.lower() in _VIBES),
            None,
        )
    if f in {"first_name", "given_name"} and len(name.split()) >= 2:
        return name.split()[0]
    if f in {"last_name", "family_name", "surname"} and len(name.split()) >= 2:
        return name.split()[-1]
    if f in {"full_name", "person_name"}:
        return name or None
    return None


def _tension_status(ctx: _AttributeContext) -> str | None:
    key = ctx.entity_name.casefold()
    for finding in ctx.findings:
        if finding.kind == "tension" and finding.name.casefold() == key:
            return finding.status
    # "the dentist is booked": a resolution cue next to the item's own content words.
    item_words = {w for w in re.findall(r"[a-z]+", key) if w not in _STOPWORDS and len(w) > 2}
    for sentence in _split_sentences(ctx.text):
        lower = sentence.lower()
        words = set(re.findall(r"[a-z]+", lower))
        if item_words & words and any(cue in lower for cue in _RESOLVED_CUES):
            return "resolved"
    existing = ctx.existing.get("status")
    if isinstance(existing, str) and existing:
        return existing
    # An open loop is open until the user says otherwise; other types get no made-up status.
    tension_like = any(label.casefold() in _KIND_TYPE_NAMES["tension"] for label in ctx.labels)
    return "unresolved" if tension_like else None


def _schema_types(spec: Mapping[str, Any]) -> set[str]:
    types: set[str] = set()
    declared = spec.get("type")
    if isinstance(declared, str):
        types.add(declared)
    elif isinstance(declared, list):
        types.update(str(t) for t in declared)
    for option in spec.get("anyOf") or spec.get("oneOf") or []:
        if isinstance(option, Mapping):
            types |= _schema_types(option)
    return types


def _nullable(spec: Mapping[str, Any]) -> bool:
    return "null" in _schema_types(spec) or not _schema_types(spec)


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    types = _schema_types(spec)
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        matches = [e for e in enum if str(e).casefold() == str(value).casefold()]
        return matches[0] if matches else None
    if isinstance(value, bool):
        return value if not types or "boolean" in types else None
    if isinstance(value, int | float):
        if "integer" in types and float(value).is_integer():
            return int(value)
        return value if not types or "number" in types else None
    if isinstance(value, str):
        # Graphiti drops string attributes over 250 characters (GRAPHITI_ATTRIBUTE_MAX_LENGTH).
        return value[:250] if not types or "string" in types else None
    return value if not types or ({"array", "object"} & types) else None


def _type_default(spec: Mapping[str, Any]) -> Any:
    types = _schema_types(spec)
    defaults: list[tuple[str, Any]] = [
        ("string", ""),
        ("integer", 0),
        ("number", 0.0),
        ("boolean", False),
        ("array", []),
        ("object", {}),
    ]
    for type_name, default in defaults:
        if type_name in types:
            return default
    return None


# --------------------------------------------------------------------------------------------
# Embedding helpers
# --------------------------------------------------------------------------------------------


def _fold_plural(word: str) -> str:
    # Light folding so "dentists" meets "dentist"; trigrams handle the other inflections.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)
