"""Content words and the two recall measures, shared by Synapse and the BM25 baseline.

Content words of a text: lowercased, every character that is not a letter or a digit turned
into a space (punctuation stripped, so "Caroline's" -> "caroline", "s"; "2023." -> "2023"),
split on whitespace, then STOPWORDS (below) and single letters removed (single digits stay:
"8 May 2023" -> "8", "may", "2023"). No stemming: a word
counts only if the same surface form comes back.
"""

import re
from collections.abc import Iterable

# A fixed English stopword list of our own (function words, auxiliaries, pronouns, the most
# common conversational fillers), so results never depend on a third-party list's version.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don
    down during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just let ll me more most
    mustn my myself no nor not now of off on once only or other ought our ours ourselves out
    over own re same shan she should shouldn so some such than that the their theirs them
    themselves then there these they this those through to too under until up ve very was
    wasn we were weren what when where which while who whom why will with won would wouldn
    you your yours yourself yourselves also yes yeah oh ok okay really like get got go going
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_NON_WORD = re.compile(r"[^0-9a-z]+")


def tokens(text: str) -> list[str]:
    """Lowercased words with punctuation stripped (stopwords kept)."""
    return _NON_WORD.sub(" ", text.lower()).split()


def content_words(text: str) -> list[str]:
    """`tokens` minus stopwords and one-letter tokens, in order, with repeats."""
    return [w for w in tokens(text) if (len(w) > 1 or w.isdigit()) and w not in STOPWORDS]


def answer_token_recall(gold_answer: str, context: str) -> float | None:
    """Share of the gold answer's distinct content words found among the context's content
    words; None when the answer has no content word (the question is left out of the mean)."""
    gold = set(content_words(gold_answer))
    if not gold:
        return None
    found = set(content_words(context))
    return len(gold & found) / len(gold)


# An evidence turn counts as returned when at least this share of its distinct content words
# appears in the returned context (see evidence_recall).
EVIDENCE_OVERLAP = 0.5


def turn_covered(turn_text: str, context_words: set[str]) -> bool:
    words = set(content_words(turn_text))
    if not words:
        return False
    return len(words & context_words) / len(words) >= EVIDENCE_OVERLAP


def evidence_recall(evidence_texts: Iterable[str], context: str) -> float | None:
    """Share of the question's evidence turns that the context covers: a turn is covered when
    at least EVIDENCE_OVERLAP of its distinct content words appear in the context (so a
    verbatim turn always counts, and a fact that restates most of a turn counts too). The same
    rule scores both Synapse and BM25. None when the question has no resolvable evidence."""
    texts = list(evidence_texts)
    if not texts:
        return None
    found = set(content_words(context))
    return sum(turn_covered(text, found) for text in texts) / len(texts)
