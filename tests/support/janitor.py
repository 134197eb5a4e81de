"""Real janitor processes (`python -m janitor`), so tests can SIGTERM and kill -9 them."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.support.services import REPO

READY_LINE = "janitor started"


class JanitorProcess:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
        self._log = Path(tempfile.mkstemp(prefix="janitor-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60) -> "JanitorProcess":
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "janitor"],
                cwd=REPO,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        offset = self._log.stat().st_size
        deadline = time.monotonic() + ready_timeout
        while READY_LINE not in self._log.read_text(errors="replace")[offset:]:
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"janitor did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """kill -9: no shutdown hook, no cleanup, the lease left to expire."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes mid-whatever (a GC pause, a stalled VM)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 40) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None if self._process is None else self._process.returncode
        self._process.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def cleanup(self) -> None:
        self.stop()
        # Captured by pytest and shown only when the test failed.
        print(f"--- janitor {self._process.pid if self._process else '?'} log tail ---")
        print(self.log_tail())
        self._log.unlink(missing_ok=True)


JanitorFactory = Callable[..., JanitorProcess]
