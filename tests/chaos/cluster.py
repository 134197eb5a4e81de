"""The system under test, all of it private to one chaos run: Redis and Neo4j (their own ports
and run dir), the OpenAI stand-in, `python -m service` and two `python -m janitor` processes.

Every fault primitive is here; each is bounded in time and leaves the timeline a window."""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.standin.server import StandinServer
from tests.support.api import base_env, free_port
from tests.support.janitor import JanitorProcess
from tests.support.private_services import PrivateServices
from tests.support.services import REPO
from tests.support.tenants import write_tenants_file

INTERNAL_TOKEN = "chaos-internal-token"
EMBEDDING_DIM = 256
START_TIMEOUT = 90.0


class ApiProcess:
    """`python -m service` on a fixed port, so clients keep their base URL across restarts."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.env = {
            **env,
            "SYNAPSE_PORT": str(port),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        self.log = Path(tempfile.mkstemp(prefix="chaos-api-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, within: float = START_TIMEOUT) -> None:
        await asyncio.to_thread(self._launch)
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while True:
                if not self.alive():
                    raise RuntimeError(f"the API exited:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not answer /health:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


class Cluster:
    def __init__(self, tenants: dict[str, str], *, llm_timeout: int) -> None:
        """`tenants` maps tenant id -> its API key."""
        self.services = PrivateServices()
        self.standin = StandinServer(embedding_dim=EMBEDDING_DIM)
        self.tenants_file = write_tenants_file(
            {
                tenant: {"keys": [key], "requestsPerSecond": 100000, "turnsPerDay": 100000000}
                for tenant, key in tenants.items()
            }
        )
        self.llm_timeout = llm_timeout
        self.api: ApiProcess | None = None
        self.api_processes: list[ApiProcess] = []
        self.janitors: list[JanitorProcess] = []
        self.retired_janitors: list[JanitorProcess] = []
        self.stopped: set[int] = set()  # indexes of janitors under SIGSTOP
        self.api_port = free_port()

    def env(self) -> dict[str, str]:
        return base_env(
            self.services.redis_url,
            self.services.neo4j_uri,
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=self.standin.base_url,
            LLM_MODEL="standin-large",
            LLM_SMALL_MODEL="standin-small",
            EMBEDDING_DIM=str(EMBEDDING_DIM),
            LLM_MAX_RETRIES="0",
            LLM_TIMEOUT_SECONDS=str(self.llm_timeout),
            SYNAPSE_TENANTS_FILE=str(self.tenants_file),
            INTERNAL_TOKEN=INTERNAL_TOKEN,
            JANITOR_LEASE_SECONDS="3",
            JANITOR_MAX_ATTEMPTS="100",
            JANITOR_EPISODE_TIMEOUT_SECONDS="30",
            JANITOR_BACKOFF_BASE_MS="200",
            JANITOR_BACKOFF_MAX_MS="2000",
            SESSION_IDLE_SECONDS="5",
            JANITOR_SWEEP_SECONDS="1",
            SUMMARY_EVERY_TURNS="4",
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.services.run, "start")
        self.standin.start()
        await self.start_api()
        for _ in range(2):
            self.janitors.append(await self._new_janitor())

    async def start_api(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.api = ApiProcess(self.env(), self.api_port)
            self.api_processes.append(self.api)
            try:
                await self.api.start(within=max(5.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                self.api.kill()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    async def _new_janitor(self) -> JanitorProcess:
        """A started janitor; retried (bounded) because a dependency may be down right now."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            janitor = JanitorProcess(self.env())
            try:
                return await asyncio.to_thread(janitor.start, 30)
            except RuntimeError:
                janitor.kill()
                self.retired_janitors.append(janitor)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    async def shutdown(self) -> None:
        for index in list(self.stopped):
            self._janitor_signal(index, signal.SIGCONT)
        for janitor in self.janitors:
            await asyncio.to_thread(janitor.stop, 10)
        if self.api is not None:
            self.api.signal(signal.SIGCONT)
            self.api.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.api.process is not None:
                    await asyncio.to_thread(self.api.process.wait, 20)
            self.api.kill()
        self.standin.stop()
        await asyncio.to_thread(self.services.stop)
        shutil.rmtree(self.services.run_dir, ignore_errors=True)
        self.tenants_file.unlink(missing_ok=True)

    def logs(self) -> str:
        parts = []
        if self.api is not None:
            parts.append(f"--- API log tail ({self.api.log}) ---\n{self.api.tail()}")
        for janitor in self.janitors:
            parts.append(
                f"--- janitor {janitor.pid} log tail ({janitor._log}) ---\n{janitor.log_tail(40)}"
            )
        older = [str(p.log) for p in self.api_processes if p is not self.api]
        older += [str(j._log) for j in self.retired_janitors]
        parts.append(f"--- logs of earlier API and janitor processes, kept: {older}")
        return "\n".join(parts)

    def discard_logs(self) -> None:
        for api in self.api_processes:
            api.log.unlink(missing_ok=True)
        for janitor in [*self.janitors, *self.retired_janitors]:
            janitor._log.unlink(missing_ok=True)

    # -- faults ------------------------------------------------------------------------------

    def _janitor_signal(self, index: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.janitors[index].pid, signum)

    async def kill_janitor(self, index: int, pause: float) -> None:
        self._janitor_signal(index, signal.SIGCONT)
        self.stopped.discard(index)
        old = self.janitors[index]
        await asyncio.to_thread(old.kill)
        self.retired_janitors.append(old)
        await asyncio.sleep(pause)
        self.janitors[index] = await self._new_janitor()

    async def stop_janitor(self, index: int, seconds: float) -> None:
        self.stopped.add(index)
        self._janitor_signal(index, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._janitor_signal(index, signal.SIGCONT)
            self.stopped.discard(index)

    async def kill_api(self, pause: float) -> None:
        assert self.api is not None
        await asyncio.to_thread(self.api.kill)
        await asyncio.sleep(pause)
        await self.start_api()

    async def stop_api(self, seconds: float) -> None:
        assert self.api is not None
        self.api.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.api.signal(signal.SIGCONT)

    async def kill_redis(self, pause: float) -> None:
        await asyncio.to_thread(self.services.kill_redis)
        try:
            await asyncio.sleep(pause)
        finally:
            await self._services("start-redis")

    async def restart_neo4j(self, pause: float) -> None:
        await self._services("stop-neo4j")
        try:
            await asyncio.sleep(pause)
        finally:
            await self._services("start-neo4j")

    async def _services(self, command: str, attempts: int = 3) -> None:
        """services.sh COMMAND, retried (bounded): a loaded machine makes starts flaky."""
        for attempt in range(attempts):
            try:
                await asyncio.to_thread(self.services.run, command)
                return
            except subprocess.CalledProcessError as exc:
                if attempt == attempts - 1:
                    output = (exc.stdout or b"") + (exc.stderr or b"")
                    raise RuntimeError(
                        f"services.sh {command} failed ({exc.returncode}): "
                        f"{output.decode(errors='replace')[-600:]}"
                    ) from exc
                await asyncio.sleep(2)

    async def model_errors(self, status: int, seconds: float) -> None:
        self.standin.fail_forever(status)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.standin.clear_failures()

    async def model_stall(self, latency: float, seconds: float) -> None:
        self.standin.set_latency(latency)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.standin.set_latency(0.0)

    # -- healing -----------------------------------------------------------------------------

    async def heal(self) -> None:
        """Everything up and running again, whatever the schedule left behind."""
        self.standin.clear_failures()
        self.standin.set_latency(0.0)
        await self._services("start-redis")
        await self._services("start-neo4j")
        if self.api is None or not self.api.alive():
            await self.start_api()
        else:
            self.api.signal(signal.SIGCONT)
        for index, janitor in enumerate(self.janitors):
            self._janitor_signal(index, signal.SIGCONT)
            if janitor._process is None or janitor._process.poll() is not None:
                self.retired_janitors.append(janitor)
                self.janitors[index] = await self._new_janitor()
        self.stopped.clear()
