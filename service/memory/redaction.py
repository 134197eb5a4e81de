"""Optional PII redaction of transcript text before it reaches the LLM (and so the graph).

Off by default (PII_REDACTION=on enables it). Built-in patterns cover e-mail addresses, phone
numbers and payment card numbers (13-19 digits passing the Luhn check, so order numbers and
timestamps are left alone); PII_PATTERNS adds regular expressions, each replaced by [REDACTED].
The raw turns stay in Redis until flushed, and /brief's working memory shows them unredacted:
redaction guards what leaves for the model provider, not what the orchestrator sent us.
"""

import re
from collections.abc import Sequence

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# International numbers (a leading +, 8-15 digits in all) and North-American style 3-3-4 groups.
# Dates (2026-02-03), times and bare numbers do not match either shape.
_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[\s().-]{0,2}\d){7,14}(?!\w)"
    r"|(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?![\w-])"
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)


class Redactor:
    def __init__(self, extra_patterns: Sequence[str] = ()) -> None:
        self._extra = [re.compile(pattern) for pattern in extra_patterns]

    def redact(self, text: str) -> str:
        text = _EMAIL.sub("[EMAIL]", text)
        text = _CARD.sub(_card, text)
        text = _PHONE.sub("[PHONE]", text)
        for pattern in self._extra:
            text = pattern.sub("[REDACTED]", text)
        return text


class NoRedaction(Redactor):
    def redact(self, text: str) -> str:
        return text


def build_redactor(enabled: bool, extra_patterns: Sequence[str]) -> Redactor:
    return Redactor(extra_patterns) if enabled else NoRedaction()
