"""`make eval DATA=path/to/locomo10.json` (or `python -m tests.eval PATH`): the command line.

Environment: EVAL_DATA (the file, or the first argument), EVAL_OUT (.run/eval/report.json),
EVAL_K (10), EVAL_TENANT (eval), EVAL_SAMPLES (use only the first N samples),
EVAL_WAIT_SECONDS (3600, for the janitor to write every episode); EVAL_URL with
EVAL_INTERNAL_TOKEN (and EVAL_API_KEY if keys are configured) to evaluate an API that is
already running instead of starting one (tests/eval/stack.py); OPENAI_API_KEY, OPENAI_BASE_URL,
EVAL_ANSWER_MODEL, EVAL_JUDGE_MODEL (both gpt-4o-mini) for the answer and judge step.
"""

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.eval.harness import Evaluation
from tests.eval.judge import DEFAULT_MODEL, Judge, JudgeConfig
from tests.eval.locomo import load
from tests.eval.report import by_category, json_report, table
from tests.eval.stack import REPO, RunningStack, own_stack


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def judge_config() -> JudgeConfig | None:
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        return None
    return JudgeConfig(
        api_key=key,
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        answer_model=os.environ.get("EVAL_ANSWER_MODEL") or DEFAULT_MODEL,
        judge_model=os.environ.get("EVAL_JUDGE_MODEL") or DEFAULT_MODEL,
    )


@contextmanager
def target() -> Iterator[RunningStack]:
    url = os.environ.get("EVAL_URL")
    if url:
        token = os.environ.get("EVAL_INTERNAL_TOKEN")
        if not token:
            raise SystemExit("EVAL_URL needs EVAL_INTERNAL_TOKEN (the API's INTERNAL_TOKEN)")
        yield RunningStack(url.rstrip("/"), token, f"running API at {url}")
        return
    with own_stack(log) as stack:
        yield stack


async def evaluate(
    data: Path, stack: RunningStack, *, k: int, tenant: str, samples_cap: int | None
) -> dict[str, Any]:
    samples = load(data)[:samples_cap] if samples_cap else load(data)
    config = judge_config()
    judge = Judge(config) if config else None
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(2)
    evaluation = Evaluation(
        samples,
        base_url=stack.base_url,
        internal_token=stack.internal_token,
        tenant=tenant,
        run_id=run_id,
        k=k,
        api_key=os.environ.get("EVAL_API_KEY") or None,
        wait_seconds=float(os.environ.get("EVAL_WAIT_SECONDS", "3600")),
        judge=judge,
        log=log,
    )
    try:
        run = await evaluation.run()
    finally:
        if judge is not None:
            await judge.aclose()
    rows = by_category(run.results)
    notes = list(run.notes)
    errors = rows["overall"]["errors"]
    if errors:
        notes.append(f"{errors} /memory/query calls failed (empty context); see the report")
    if any(q.adversarial for s in samples for q in s.questions):
        notes.append(
            "category 5 questions without `answer` are scored against `adversarial_answer` "
            "(the fact the question tries to lure out)"
        )
    notes.append(
        "BM25 latency is in-process ranking (no HTTP); its context is capped at Synapse's "
        "character count per question, so it is shorter only when the sample has fewer turns"
    )
    if config is None:
        notes.append("no OPENAI_API_KEY: the answer + LLM-judge step (J) was skipped")
    else:
        notes.append(
            f"J: answers by {config.answer_model}, judged by {config.judge_model} with mem0's "
            "LoCoMo ACCURACY_PROMPT (temperature 0, JSON label); category 5 not judged"
        )
    meta = {
        "data": str(data),
        "run_id": run_id,
        "tenant": tenant,
        "k": k,
        "target": stack.description,
        "samples": len(samples),
        "sessions": sum(len(s.sessions) for s in samples),
        "turns": sum(len(s.turns) for s in samples),
        "judge": None
        if config is None
        else {
            "answer_model": config.answer_model,
            "judge_model": config.judge_model,
            "base_url": config.base_url,
        },
    }
    report = json_report(run, rows, meta)
    report["notes"] = notes
    report["table"] = table(rows, k, judged=config is not None)
    return report


def main() -> None:
    data_arg = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EVAL_DATA", "")
    if not data_arg:
        raise SystemExit(
            "usage: make eval DATA=path/to/locomo10.json (LoCoMo layout; the data set is not "
            "in the repository, tests/eval/sample/small_locomo.json is a small stand-in)"
        )
    data = Path(data_arg)
    if not data.is_file():
        raise SystemExit(f"DATA={data_arg}: no such file")
    out = Path(os.environ.get("EVAL_OUT") or REPO / ".run" / "eval" / "report.json")
    k = int(os.environ.get("EVAL_K", "10"))
    cap = int(os.environ["EVAL_SAMPLES"]) if os.environ.get("EVAL_SAMPLES") else None
    tenant = os.environ.get("EVAL_TENANT", "eval")
    started = time.perf_counter()
    with target() as stack:
        log(f"evaluating {data} against {stack.description}")
        report = asyncio.run(evaluate(data, stack, k=k, tenant=tenant, samples_cap=cap))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    elapsed = time.perf_counter() - started
    timings = ", ".join(f"{name} {value:.1f}" for name, value in report["timings"].items())
    print(
        f"\nSynapse memory eval: {report['samples']} samples, {report['sessions']} sessions, "
        f"{report['turns']} turns, {len(report['questions'])} questions; {report['target']}\n"
    )
    print(report["table"])
    print()
    for note in report["notes"]:
        print(f"- {note}")
    print(f"- times (s): {timings}; total {elapsed:.1f}")
    print(f"- report: {out}")


if __name__ == "__main__":
    main()
