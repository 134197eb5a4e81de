"""The evaluation harness (`make eval`, tests/eval): its own behaviour, not Synapse's quality.

Unit tests for BM25, the budget, content words, dates and evidence ids; then the whole harness
on tests/eval/sample/small_locomo.json against a real API, a real janitor (default stack: the
offline provider), real Redis and Neo4j, with the answer/judge step pointed at the stand-in.
"""

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import FAST_JANITOR
from tests.eval.bm25 import BM25, fill_budget
from tests.eval.cli import evaluate
from tests.eval.harness import user_id_for
from tests.eval.judge import parse_label
from tests.eval.locomo import evidence_ids, load, parse_session_date
from tests.eval.stack import RunningStack
from tests.eval.text import answer_token_recall, content_words, evidence_recall
from tests.standin.server import StandinServer
from tests.support.api import ApiFactory
from tests.support.janitor import JanitorFactory
from tests.support.stack import INTERNAL_TOKEN

SAMPLE = Path(__file__).parent / "eval" / "sample" / "small_locomo.json"


# --- units ---------------------------------------------------------------------------------------


def test_bm25_ranks_the_obviously_matching_turn_first() -> None:
    turns = [
        "Tom: I started pottery classes at the community center.",
        "Maya: I adopted a beagle named Biscuit last weekend.",
        "Tom: The weather was nice at the community center.",
        "Maya: My parents are visiting from Lisbon.",
    ]
    index = BM25(turns)
    assert index.rank("What is the name of Maya's beagle?")[0] == 1
    assert index.rank("pottery classes")[0] == 0
    # Nothing matches: every score is 0 and the order is the turns' own.
    assert index.rank("zebra") == [0, 1, 2, 3]


def test_bm25_score_is_okapi_with_k1_1_2_and_b_0_75() -> None:
    index = BM25(["apple banana", "cherry"])
    # N=2, df(apple)=1 -> idf = ln(1 + 1.5/1.5); |d0|=2, avgdl=1.5, tf=1.
    idf = math.log(2)
    expected = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / 1.5))
    scores = index.scores("apple")
    assert scores[0] == pytest.approx(expected)
    assert scores[1] == 0


def test_fill_budget_never_exceeds_the_budget_and_fills_it_when_it_can() -> None:
    texts = ["a" * 30, "b" * 50, "c" * 10]
    for budget in (0, 1, 29, 30, 31, 32, 60, 91, 92, 500):
        joined = "\n".join(fill_budget(texts, [1, 0, 2], budget))
        assert len(joined) == min(budget, 92)
        assert joined == ("b" * 50 + "\n" + "a" * 30 + "\n" + "c" * 10)[:budget]


def test_content_words_drop_stopwords_and_punctuation() -> None:
    assert content_words("The weekend before 8 May, 2023!") == ["weekend", "8", "may", "2023"]
    assert content_words("Caroline's dog") == ["caroline", "dog"]
    assert answer_token_recall("head nurse in the cardiology ward", "The NURSE (ward 3).") == 0.5
    assert answer_token_recall("the", "anything") is None
    assert evidence_recall([], "x") is None
    # Covered when at least half of the turn's content words come back.
    assert evidence_recall(["Maya: beagle named Biscuit"], "biscuit, maya") == 1.0
    assert evidence_recall(["Maya: beagle named Biscuit"], "Biscuit") == 0.0


def test_session_dates_and_evidence_ids_are_read_robustly() -> None:
    assert parse_session_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert parse_session_date("12:09 am on 13 September, 2023") == datetime(
        2023, 9, 13, 0, 9, tzinfo=UTC
    )
    assert parse_session_date("Sept 3rd, 2023") == datetime(2023, 9, 3, 12, tzinfo=UTC)
    assert parse_session_date("2023-05-08T10:00:00Z") == datetime(2023, 5, 8, 10, tzinfo=UTC)
    assert parse_session_date("no date here") is None
    assert evidence_ids(["D1:3", "D8:6; D9:17", "d2 : 4", "D1:3", ""]) == [
        "D1:3",
        "D8:6",
        "D9:17",
        "D2:4",
    ]


def test_the_judge_label_is_read_from_json_or_the_bare_word() -> None:
    assert parse_label('{"label": "CORRECT"}') is True
    assert parse_label('```json\n{"label": "WRONG"}\n```') is False
    assert parse_label("CORRECT") is True
    assert parse_label("{}") is False


def test_the_sample_loads_with_speakers_mapped_and_turns_seconds_apart() -> None:
    samples = load(SAMPLE)
    assert [len(s.sessions) for s in samples] == [3, 2]
    first = samples[0].sessions[0].turns
    assert (first[0].role, first[1].role) == ("user", "assistant")
    assert first[0].text.startswith("Maya: ")
    assert (first[1].timestamp - first[0].timestamp).total_seconds() == 5
    assert samples[0].questions[-1].adversarial
    assert "[shares an image:" in samples[0].sessions[2].turns[3].text


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_the_harness_runs_end_to_end_on_the_small_sample(
    api_factory: ApiFactory,
    janitor_factory: JanitorFactory,
    standin_fresh: StandinServer,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The default stack (offline provider) for Synapse; the answer and judge step talks to the
    # stand-in, so it runs without a real key (its verdicts mean nothing here).
    api = api_factory(**FAST_JANITOR)
    janitor_factory(**FAST_JANITOR)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", standin_fresh.base_url)
    stack = RunningStack(api.base_url, INTERNAL_TOKEN, "test stack")

    report = await evaluate(SAMPLE, stack, k=10, tenant=tenant, samples_cap=None)
    json.dumps(report, default=str)  # the JSON report is serialisable

    samples = load(SAMPLE)
    questions = report["questions"]
    # Every question asked, of the right user, with no error; every episode landed.
    assert len(questions) == sum(len(s.questions) for s in samples) == 11
    assert {(q["sample_id"], q["index"]) for q in questions} == {
        (s.sample_id, q.index) for s in samples for q in s.questions
    }
    assert all(q["synapse_error"] is None for q in questions)
    assert report["outbox"]["counts"] == {"pending": 0, "retrying": 0, "dead": 0}
    assert report["outbox"]["sessions_sent"] == 5

    # One row per category present in the data, plus overall, in the table too.
    rows = report["categories"]
    assert set(rows) == {"1", "2", "3", "4", "5", "overall"}
    assert [rows[c]["questions"] for c in ("1", "2", "3", "4", "5")] == [2, 2, 2, 3, 2]
    for name in ("1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop", "5 adversarial"):
        assert f"| {name} |" in report["table"]
    # Overall leaves out the adversarial category, as published LoCoMo harnesses do.
    assert "| overall | 9 |" in report["table"]

    for q in questions:
        for side in ("synapse", "bm25"):
            for measure in ("answer_recall", "evidence_recall"):
                value = q[measure][side]
                assert value is not None
                assert 0.0 <= value <= 1.0
        # The baseline's context budget is Synapse's character count for the question.
        assert len(q["bm25_context"]) <= len(q["synapse_context"])
        assert q["synapse_ms"] > 0
        assert q["bm25_ms"] >= 0
    for row in rows.values():
        for side in ("synapse", "bm25"):
            for measure in ("answer_recall", "evidence_recall", "judge_accuracy"):
                value = row[side][measure]
                assert value is None or 0.0 <= value <= 1.0
            assert row[side]["p50_ms"] <= row[side]["p95_ms"]

    # Hand-checked question: "What job does Maya have after her promotion?", gold "head nurse in
    # the cardiology ward" -> content words head, nurse, cardiology, ward; evidence D2:1.
    job = next(q for q in questions if q["question"].startswith("What job does Maya"))
    assert job["evidence"] == ["D2:1"]
    for side in ("synapse", "bm25"):
        context = job[f"{side}_context"].lower()
        words = set(re.findall(r"[a-z0-9]+", context))
        expected = sum(w in words for w in ("head", "nurse", "cardiology", "ward")) / 4
        assert job["answer_recall"][side] == expected
        evidence_words = {"maya", "promotion", "hospital", "head", "nurse", "cardiology", "ward"}
        covered = len(evidence_words & words) / len(evidence_words) >= 0.5
        assert job["evidence_recall"][side] == (1.0 if covered else 0.0)

    # BM25 put the obviously matching turn first for the dog's name.
    dog = next(q for q in questions if q["question"] == "What is the name of Maya's dog?")
    assert dog["bm25_turns"][0] == "D1:1"

    # Every non-adversarial question answered and judged on both sides (two model calls each);
    # category 5 is not judged, as in the published harness.
    judged = [q for q in questions if q["category"] != 5]
    assert all(set(q["judged"]) == {"synapse", "bm25"} for q in judged)
    assert all(q["judged"] == {} for q in questions if q["category"] == 5)
    chat = [r for r in standin_fresh.records if r.path == "/v1/chat/completions"]
    assert len(chat) == 4 * len(judged)
    assert sum(r.kind == "json_object" for r in chat) == 2 * len(judged)
    assert rows["5"]["synapse"]["judged"] == 0
    assert user_id_for(samples[0], report["run_id"]).startswith("small-1-")
