"""The LoCoMo JSON layout (snap-research/locomo, `locomo10.json`), read defensively.

A file is a list of samples: {"sample_id", "conversation": {"speaker_a", "speaker_b",
"session_1": [{"speaker", "dia_id", "text", ...}], "session_1_date_time": "1:56 pm on 8 May,
2023", ...}, "qa": [{"question", "answer" | "adversarial_answer", "evidence": ["D1:3"],
"category": 1-5}]}. Turns that share an image keep its caption (`blip_caption`) in the text.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# LoCoMo's category numbers (the data set's own README): what each row of the table means.
CATEGORY_NAMES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}

# Turns of one session are this far apart, starting at the session's date and time.
TURN_SPACING_SECONDS = 5

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])\.?\s*m\b\.?", re.I)
_TIME_24 = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\b")


def parse_session_date(text: str) -> datetime | None:
    """A session date as LoCoMo writes it ("1:56 pm on 8 May, 2023"; also "8 May 2023",
    "May 8, 2023 10:05", ISO 8601) -> an aware UTC datetime; a date without a time is noon;
    None when no date can be found."""
    text = " ".join(str(text).split())
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    year = month = day = None
    if match := _DAY_MONTH_YEAR.search(text):
        day, month, year = int(match[1]), _MONTHS[match[2].lower()], int(match[3])
    elif match := _MONTH_DAY_YEAR.search(text):
        month, day, year = _MONTHS[match[1].lower()], int(match[2]), int(match[3])
    elif match := _ISO_DATE.search(text):
        year, month, day = int(match[1]), int(match[2]), int(match[3])
    if year is None or month is None or day is None:
        return None
    hour, minute, second = 12, 0, 0
    if match := _TIME.search(text):
        hour = int(match[1]) % 12 + (12 if match[4].lower() == "p" else 0)
        minute, second = int(match[2] or 0), int(match[3] or 0)
    elif match := _TIME_24.search(text):
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    role: str  # "user" for speaker_a, "assistant" for everyone else
    text: str  # "Speaker: what they said [shares an image: caption]"
    timestamp: datetime


@dataclass(frozen=True)
class Session:
    key: str  # "session_3"
    number: int
    started_at: datetime
    date_text: str  # the data set's own words, e.g. "1:56 pm on 8 May, 2023"
    turns: list[Turn]


@dataclass(frozen=True)
class Question:
    index: int
    question: str
    answer: str  # the gold answer; for adversarial ones without `answer`, adversarial_answer
    category: int
    evidence: list[str]  # normalised dia ids ("D1:3")
    adversarial: bool  # the gold came from `adversarial_answer`


@dataclass
class Sample:
    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: list[Session]
    questions: list[Question]
    notes: list[str] = field(default_factory=list)

    @property
    def turns(self) -> list[Turn]:
        return [turn for session in self.sessions for turn in session.turns]

    @property
    def last_time(self) -> datetime:
        return max(turn.timestamp for turn in self.turns)


_SESSION_KEY = re.compile(r"^session_(\d+)$")
_DIA_ID = re.compile(r"D\s*(\d+)\s*:\s*(\d+)", re.I)


def evidence_ids(raw: Any) -> list[str]:
    """["D1:3", "D8:6; D9:17", "d2 : 4"] -> ["D1:3", "D8:6", "D9:17", "D2:4"] (deduplicated)."""
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for value in values:
        for session, turn in _DIA_ID.findall(str(value or "")):
            dia = f"D{int(session)}:{int(turn)}"
            if dia not in out:
                out.append(dia)
    return out


def _turn_text(speaker: str, raw: dict[str, Any]) -> str:
    text = " ".join(str(raw.get("text") or "").split())
    caption = raw.get("blip_caption")
    if caption:
        text = f"{text} [shares an image: {' '.join(str(caption).split())}]".strip()
    return f"{speaker}: {text}"


def parse_sample(raw: dict[str, Any], position: int) -> Sample:
    conversation = raw.get("conversation") or {}
    speaker_a = str(conversation.get("speaker_a") or "A")
    speaker_b = str(conversation.get("speaker_b") or "B")
    sample_id = str(raw.get("sample_id") or f"sample-{position}")
    notes: list[str] = []
    numbered = sorted((int(m[1]), key) for key in conversation if (m := _SESSION_KEY.match(key)))
    sessions: list[Session] = []
    previous: datetime | None = None
    for number, key in numbered:
        raw_turns = [t for t in conversation.get(key) or [] if isinstance(t, dict)]
        raw_turns = [t for t in raw_turns if str(t.get("text") or t.get("blip_caption") or "")]
        if not raw_turns:
            continue
        date_text = " ".join(str(conversation.get(f"{key}_date_time") or "").split())
        started = parse_session_date(date_text)
        if started is None:
            # Unparseable or missing: a day after the previous session (or a fixed origin).
            started = (previous or datetime(2023, 1, 1, 12, tzinfo=UTC)) + timedelta(days=1)
            notes.append(f"{key}: no parseable date, placed at {started.isoformat()}")
        if previous is not None and started <= previous:
            # Sessions must reach Synapse in time order; an out-of-order date keeps its place.
            notes.append(f"{key}: date not after the previous session's last turn; moved")
            started = previous + timedelta(minutes=1)
        turns = []
        for i, t in enumerate(raw_turns):
            speaker = str(t.get("speaker") or "")
            dia_id = next(iter(evidence_ids(t.get("dia_id"))), f"D{number}:{i + 1}")
            turns.append(
                Turn(
                    dia_id=dia_id,
                    speaker=speaker,
                    role="user" if speaker == speaker_a else "assistant",
                    text=_turn_text(speaker or "?", t),
                    timestamp=started + timedelta(seconds=TURN_SPACING_SECONDS * i),
                )
            )
        previous = turns[-1].timestamp
        sessions.append(Session(key, number, started, date_text, turns))
    questions = []
    for i, qa in enumerate(raw.get("qa") or []):
        if not isinstance(qa, dict) or not str(qa.get("question") or "").strip():
            continue
        adversarial = "answer" not in qa or qa.get("answer") is None
        answer = qa.get("adversarial_answer") if adversarial else qa.get("answer")
        try:
            category = int(qa.get("category") or 0)
        except (TypeError, ValueError):
            category = 0
        questions.append(
            Question(
                index=i,
                question=str(qa["question"]).strip(),
                answer="" if answer is None else str(answer),
                category=category,
                evidence=evidence_ids(qa.get("evidence")),
                adversarial=adversarial,
            )
        )
    return Sample(sample_id, speaker_a, speaker_b, sessions, questions, notes)


def load(path: str | Path) -> list[Sample]:
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):  # a single sample, or {"id": sample, ...}
        data = [data] if "conversation" in data else list(data.values())
    samples = [parse_sample(raw, i) for i, raw in enumerate(data) if isinstance(raw, dict)]
    samples = [s for s in samples if s.sessions]
    if not samples:
        raise ValueError(f"{path}: no sample with a non-empty session")
    return samples
