"""Okapi BM25 over a sample's individual turns: the baseline every Synapse figure sits next to.

score(q, d) = sum over query terms t of
    idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
with idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)) (the non-negative form Lucene uses),
k1 = 1.2, b = 0.75. Terms are content words (tests/eval/text.py); a repeated query term counts
once per occurrence, as in the original formula.
"""

import math
from collections import Counter
from collections.abc import Sequence

from tests.eval.text import content_words

K1 = 1.2
B = 0.75


class BM25:
    def __init__(self, documents: Sequence[str], *, k1: float = K1, b: float = B) -> None:
        self.k1 = k1
        self.b = b
        self._tf = [Counter(content_words(doc)) for doc in documents]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._n = len(documents)
        self._avgdl = (sum(self._len) / self._n) if self._n else 0.0
        df: Counter[str] = Counter()
        for tf in self._tf:
            df.update(tf.keys())
        self._idf = {
            term: math.log(1 + (self._n - count + 0.5) / (count + 0.5))
            for term, count in df.items()
        }

    def scores(self, query: str) -> list[float]:
        terms = content_words(query)
        out = []
        for tf, length in zip(self._tf, self._len, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self._avgdl) if self._avgdl else 0
            score = 0.0
            for term in terms:
                freq = tf.get(term, 0)
                if freq:
                    score += self._idf[term] * freq * (self.k1 + 1) / (freq + norm)
            out.append(score)
        return out

    def rank(self, query: str) -> list[int]:
        """Document indices, best first; ties (and zero scores) keep document order."""
        scores = self.scores(query)
        return sorted(range(self._n), key=lambda i: (-scores[i], i))


def fill_budget(texts: Sequence[str], order: Sequence[int], budget: int) -> list[str]:
    """Top-ranked texts until their newline-joined length reaches `budget` characters; the last
    one is cut so the joined context is exactly min(budget, everything) characters long."""
    picked: list[str] = []
    used = 0
    for index in order:
        if used >= budget:
            break
        sep = 1 if picked else 0
        room = budget - used - sep
        if room <= 0:
            break
        text = texts[index][:room]
        picked.append(text)
        used += sep + len(text)
    return picked
