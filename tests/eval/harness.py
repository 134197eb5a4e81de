"""The evaluation itself, through Synapse's public HTTP API exactly as an orchestrator uses it.

For each sample: one Synapse user (tenant "eval"), every session sent whole through
POST /session/ingest (speaker_a -> role "user", speaker_b -> "assistant", the speaker's name kept
in the text, turns TURN_SPACING_SECONDS apart from the session's date). Then the janitor is
given the time to write every episode (GET /internal/debug/outbox until nothing is pending or
retrying), and every question goes to POST /memory/query (limit k, referenceTime one minute after
the sample's last turn), one at a time so latencies are not queued behind each other. The BM25
baseline ranks the same sample's turns for the same question and keeps top turns up to the
number of characters Synapse returned for it.
"""

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from contracts import MemoryQueryRequest, Message, SessionIngestRequest, SynapseClient
from contracts.client import SynapseError
from contracts.limits import MAX_QUERY_CHARS
from tests.eval.bm25 import BM25, fill_budget
from tests.eval.judge import JUDGED_CATEGORIES, Judge
from tests.eval.locomo import Sample
from tests.eval.text import answer_token_recall, evidence_recall

REFERENCE_DELAY = timedelta(minutes=1)
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass
class QuestionResult:
    sample_id: str
    user_id: str
    index: int
    category: int
    question: str
    gold: str
    adversarial: bool
    evidence: list[str]
    evidence_missing: list[str]  # evidence ids with no turn in the sample
    synapse_context: str = ""
    synapse_facts: int = 0
    synapse_entities: int = 0
    synapse_ms: float = 0.0
    synapse_error: str | None = None
    bm25_context: str = ""
    bm25_turns: list[str] = field(default_factory=list)  # dia ids, best first
    bm25_ms: float = 0.0
    answer_recall: dict[str, float | None] = field(default_factory=dict)
    evidence_recall: dict[str, float | None] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    judged: dict[str, bool] = field(default_factory=dict)

    @property
    def chars(self) -> dict[str, int]:
        return {"synapse": len(self.synapse_context), "bm25": len(self.bm25_context)}


@dataclass
class EvalRun:
    results: list[QuestionResult]
    timings: dict[str, float]
    outbox: dict[str, Any]
    notes: list[str]


def user_id_for(sample: Sample, run_id: str) -> str:
    return f"{_UNSAFE_ID.sub('-', sample.sample_id)[:80]}-{run_id}"


def synapse_context(body: Any) -> str:
    """What an orchestrator would put in its prompt: the facts, best first, then the entity
    summaries, one per line."""
    lines = [fact.text for fact in body.facts]
    lines += [entity.summary for entity in body.entities if entity.summary]
    return "\n".join(line.strip() for line in lines if line.strip())


def bm25_documents(sample: Sample) -> list[str]:
    """One document per turn: the text as ingested, prefixed with its session's date as the
    data set writes it (the same time information Synapse gets from the timestamps)."""
    out = []
    for session in sample.sessions:
        date = session.date_text
        for turn in session.turns:
            out.append(f"({date}) {turn.text}" if date else turn.text)
    return out


async def _retrying(call: Callable[[], Any], what: str, attempts: int = 6) -> Any:
    for attempt in range(attempts):
        try:
            return await call()
        except SynapseError as exc:
            if exc.status not in (429, 503) or attempt == attempts - 1:
                raise
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
        await asyncio.sleep(min(2**attempt, 10))
    raise RuntimeError(f"{what}: unreachable")


class Evaluation:
    def __init__(
        self,
        samples: list[Sample],
        *,
        base_url: str,
        internal_token: str,
        tenant: str = "eval",
        run_id: str,
        k: int = 10,
        api_key: str | None = None,
        wait_seconds: float = 3600,
        judge: Judge | None = None,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.samples = samples
        self.base_url = base_url
        self.internal_token = internal_token
        self.tenant = tenant
        self.run_id = run_id
        self.k = k
        self.api_key = api_key
        self.wait_seconds = wait_seconds
        self.judge = judge
        self.log = log

    async def run(self) -> EvalRun:
        timings: dict[str, float] = {}
        notes = [note for sample in self.samples for note in sample.notes]
        async with (
            SynapseClient(self.base_url, api_key=self.api_key, timeout=60) as client,
            httpx.AsyncClient(base_url=self.base_url, timeout=30) as http,
        ):
            start = time.perf_counter()
            episodes = await self._ingest(client)
            timings["ingest_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            outbox = await self._wait_for_janitor(http)
            outbox["sessions_sent"] = episodes
            timings["janitor_wait_seconds"] = time.perf_counter() - start
            if outbox["counts"].get("dead"):
                notes.append(
                    f"{outbox['counts']['dead']} outbox entries are dead (never written to the "
                    "graph); their sessions are missing from Synapse's answers"
                )
            start = time.perf_counter()
            results = await self._ask(client)
            timings["query_seconds"] = time.perf_counter() - start
        if self.judge is not None:
            start = time.perf_counter()
            await self._judge(results)
            timings["judge_seconds"] = time.perf_counter() - start
        return EvalRun(results, timings, outbox, notes)

    async def _ingest(self, client: SynapseClient) -> int:
        sent = 0
        for sample in self.samples:
            user = user_id_for(sample, self.run_id)
            for session in sample.sessions:
                request = SessionIngestRequest(
                    tenant_id=self.tenant,
                    user_id=user,
                    session_id=session.key,
                    messages=[
                        Message(role=turn.role, text=turn.text, timestamp=turn.timestamp)  # type: ignore[arg-type]
                        for turn in session.turns
                    ],
                    started_at=session.turns[0].timestamp,
                    ended_at=session.turns[-1].timestamp,
                )
                await _retrying(lambda r=request: client.session_ingest(r), "session ingest")
                sent += 1
            self.log(f"ingested {sample.sample_id}: {len(sample.sessions)} sessions as {user}")
        return sent

    async def _wait_for_janitor(self, http: httpx.AsyncClient) -> dict[str, Any]:
        """Until the tenant's outbox holds nothing pending or retrying (dead entries stay, and
        are reported)."""
        deadline = time.monotonic() + self.wait_seconds
        last_log = 0.0
        while True:
            response = await http.get(
                "/internal/debug/outbox",
                params={"tenantId": self.tenant},
                headers={"X-Internal-Token": self.internal_token},
            )
            if response.status_code in (401, 404):
                raise RuntimeError(
                    f"GET /internal/debug/outbox answered {response.status_code}: the API needs "
                    "INTERNAL_TOKEN set, and the harness the same value (EVAL_INTERNAL_TOKEN)"
                )
            response.raise_for_status()
            view: dict[str, Any] = response.json()
            counts = view.get("counts", {})
            waiting = int(counts.get("pending", 0)) + int(counts.get("retrying", 0))
            if waiting == 0:
                return {"counts": counts, "usage": view.get("usage", {})}
            if time.monotonic() > deadline:
                raise TimeoutError(f"the janitor did not drain the outbox: {counts}")
            if time.monotonic() - last_log > 15:
                self.log(f"waiting for the janitor: {counts}")
                last_log = time.monotonic()
            await asyncio.sleep(0.5)

    async def _ask(self, client: SynapseClient) -> list[QuestionResult]:
        results: list[QuestionResult] = []
        for sample in self.samples:
            user = user_id_for(sample, self.run_id)
            reference = sample.last_time + REFERENCE_DELAY
            turns = sample.turns
            by_id = {turn.dia_id: turn for turn in turns}
            documents = bm25_documents(sample)
            index = BM25(documents)
            # One unmeasured query first: connection set-up and cold caches are not the
            # per-question latency an orchestrator sees.
            warm = MemoryQueryRequest(
                tenant_id=self.tenant, user_id=user, query="warm up", limit=self.k
            )
            await _retrying(lambda r=warm: client.memory_query(r), "warm-up query")
            for q in sample.questions:
                result = QuestionResult(
                    sample_id=sample.sample_id,
                    user_id=user,
                    index=q.index,
                    category=q.category,
                    question=q.question,
                    gold=q.answer,
                    adversarial=q.adversarial,
                    evidence=q.evidence,
                    evidence_missing=[d for d in q.evidence if d not in by_id],
                )
                request = MemoryQueryRequest(
                    tenant_id=self.tenant,
                    user_id=user,
                    query=q.question[:MAX_QUERY_CHARS],
                    limit=self.k,
                    reference_time=reference,
                )
                start = time.perf_counter()
                try:
                    body = await client.memory_query(request)
                except SynapseError as exc:
                    result.synapse_error = str(exc)
                else:
                    result.synapse_context = synapse_context(body)
                    result.synapse_facts = len(body.facts)
                    result.synapse_entities = len(body.entities)
                result.synapse_ms = (time.perf_counter() - start) * 1000
                start = time.perf_counter()
                order = index.rank(q.question)
                picked = fill_budget(documents, order, len(result.synapse_context))
                result.bm25_context = "\n".join(picked)
                result.bm25_ms = (time.perf_counter() - start) * 1000
                result.bm25_turns = [turns[i].dia_id for i in order[: len(picked)]]
                evidence = [by_id[d].text for d in q.evidence if d in by_id]
                for side, context in (
                    ("synapse", result.synapse_context),
                    ("bm25", result.bm25_context),
                ):
                    result.answer_recall[side] = answer_token_recall(q.answer, context)
                    result.evidence_recall[side] = evidence_recall(evidence, context)
                results.append(result)
            self.log(f"asked {len(sample.questions)} questions of {sample.sample_id}")
        return results

    async def _judge(self, results: list[QuestionResult]) -> None:
        judge = self.judge
        assert judge is not None

        async def one(result: QuestionResult, side: str, context: str) -> None:
            answer = await judge.answer(result.question, context)
            result.answers[side] = answer
            result.judged[side] = await judge.grade(result.question, result.gold, answer)

        jobs = [
            one(r, side, context)
            for r in results
            if r.category in JUDGED_CATEGORIES
            for side, context in (("synapse", r.synapse_context), ("bm25", r.bm25_context))
        ]
        self.log(f"judging {len(jobs)} answers")
        await asyncio.gather(*jobs)
