"""The keyword half of /memory/query's hybrid search: which words of a question it searches."""

import re

# The keyword half of the hybrid search matches words, and Neo4j's fulltext analyzer keeps stop
# words: in a question, "what", "does", "the" match nearly every fact and passage, and every
# transcript line starts with a role ("user: ...") while the extractor names the speaker "User"
# in nearly every fact. Such matches only add noise to the fusion (measured: "What pets does the
# user have?" ranked "User feels frustrated about the flaky tests" first, on "the" and "user").
# So keyword search sees the question's content words only; the embedding sees all of it.
_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves user users assistant
    assistants coming ever tell know"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORDS = re.compile(r"[\w']+")


def keywords(query: str) -> str:
    """The question as keyword search sees it: its content words; whole if it has none."""
    kept = [
        word for word in _WORDS.findall(query) if word.lower().removesuffix("'s") not in _STOP_WORDS
    ]
    return " ".join(kept) if kept else query
