"""The janitor's composition root: an arq worker whose startup opens the process's clients and
starts the sweep and pump loops, and whose shutdown drains them.

`python -m janitor` runs it; `WorkerSettings` is also what `arq --check` (the liveness probe)
reads to find the queue's health-check key.
"""

import asyncio
import logging
import os
import socket
import sys
from typing import Any

from arq import Retry
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, func

from janitor.runtime import JanitorLoops, Pump, Retention, Sweeper
from service.graph import LlmRateLimited
from service.memory.summaries import Summarizer
from service.observability.logs import configure_logging
from service.resources import Resources
from service.settings import Settings, SettingsError
from service.store.jobs import REFRESH_SUMMARY, queue_settings
from service.store.layout import UserKeys, janitor_health_key

logger = logging.getLogger(__name__)

HEALTH_CHECK_KEY = janitor_health_key(socket.gethostname())
# Shutdown budget for in-flight flushes before they are abandoned to the outbox.
DRAIN_SECONDS = 20.0
SUMMARY_RETRY_SECONDS = 30


async def refresh_summary(ctx: dict[str, Any], user_ref: str) -> bool:
    summarizer: Summarizer = ctx["summarizer"]
    try:
        return await summarizer.refresh(UserKeys.from_ref(user_ref))
    except LlmRateLimited as exc:
        raise Retry(defer=exc.retry_after_seconds or SUMMARY_RETRY_SECONDS) from exc


def _startup(settings: Settings) -> WorkerCoroutine:
    async def startup(ctx: dict[str, Any]) -> None:
        resources = await Resources.open(settings)
        ctx["resources"] = resources
        ctx["summarizer"] = Summarizer(
            resources.redis_store.summaries,
            resources.graph,
            resources.redactor,
            max_chars=settings.summary_max_chars,
        )
        loops = JanitorLoops(
            Sweeper(
                resources.store,
                resources.jobs,
                idle_seconds=settings.session_idle_seconds,
                metrics=resources.janitor_metrics,
            ),
            Pump(resources.outbox, resources.flusher, max_parallel=settings.janitor_max_jobs),
            Retention(
                resources.outbox,
                resources.graph,
                dead_letter_seconds=settings.dead_letter_retention_seconds,
                metrics=resources.janitor_metrics,
            ),
            sweep_seconds=settings.janitor_sweep_seconds,
        )
        loops.start()
        ctx["loops"] = loops
        logger.info("janitor started (LLM provider %s)", settings.llm_provider)

    return startup


async def _shutdown(ctx: dict[str, Any]) -> None:
    loops: JanitorLoops | None = ctx.get("loops")
    if loops is not None:
        await loops.stop(DRAIN_SECONDS)
    resources: Resources | None = ctx.get("resources")
    if resources is not None:
        await resources.close()
    logger.info("janitor stopped")


def functions() -> list[Function]:
    return [func(refresh_summary, name=REFRESH_SUMMARY, keep_result=0, max_tries=5, timeout=300)]


def create_worker(settings: Settings) -> Worker:
    return Worker(
        functions=functions(),
        redis_settings=queue_settings(settings),
        on_startup=_startup(settings),
        on_shutdown=_shutdown,
        max_jobs=settings.janitor_max_jobs,
        handle_signals=True,
        health_check_interval=30,
        health_check_key=HEALTH_CHECK_KEY,
        job_timeout=300,
        keep_result=0,
    )


class WorkerSettings:
    """For `arq --check janitor.worker.WorkerSettings`: only the queue's location is read, from
    the same environment as the janitor's."""

    redis_settings = queue_settings(Settings.from_env(os.environ))
    functions = functions()
    health_check_key = HEALTH_CHECK_KEY


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        sys.exit(f"synapse janitor: {exc}")
    configure_logging(settings.log_level)
    try:
        create_worker(settings).run()
    except asyncio.CancelledError:
        # arq's close() re-raises the cancellation of a job that was still running (or just
        # finishing) at SIGTERM: a rolling-summary job, which arq runs again after its job
        # timeout and which writes nothing unless it completes. The stop itself was clean, and
        # an orchestrator must not read it as a crash.
        logger.info("janitor stopped; a summary job in flight was cancelled and will run again")
