"""What happened and when: fault windows and the history of every request the load sent."""

import time
from dataclasses import dataclass, field

# Fault kinds. A 503 overlapping one of DEPENDENCY_KINDS (with GRACE_SECONDS) is expected; a
# transport error overlapping one of API_KINDS is expected (the request is then not acknowledged).
JANITOR_KILL = "janitor-kill-9"
JANITOR_STOP = "janitor-sigstop"
API_KILL = "api-kill-9"
API_STOP = "api-sigstop"
REDIS_KILL = "redis-kill-9"
NEO4J_STOP = "neo4j-stop"
MODEL_ERRORS = "model-errors"
MODEL_STALL = "model-stall"

API_KINDS = frozenset({API_KILL, API_STOP})
DEPENDENCY_KINDS = frozenset({REDIS_KILL, NEO4J_STOP, MODEL_ERRORS, MODEL_STALL}) | API_KINDS
GRACE_SECONDS = 5.0


@dataclass
class Window:
    kind: str
    detail: str
    start: float
    end: float | None = None

    def overlaps(self, t0: float, t1: float, grace: float) -> bool:
        end = time.monotonic() if self.end is None else self.end
        return t0 <= end + grace and t1 >= self.start - grace


@dataclass
class Timeline:
    origin: float = field(default_factory=time.monotonic)
    windows: list[Window] = field(default_factory=list)

    def open(self, kind: str, detail: str = "") -> Window:
        window = Window(kind, detail, time.monotonic())
        self.windows.append(window)
        return window

    @staticmethod
    def close(window: Window) -> None:
        if window.end is None:
            window.end = time.monotonic()

    def rel(self, t: float | None) -> str:
        return "open" if t is None else f"{t - self.origin:7.2f}s"

    def covering(self, kinds: frozenset[str], t0: float, t1: float) -> list[Window]:
        return [w for w in self.windows if w.kind in kinds and w.overlaps(t0, t1, GRACE_SECONDS)]

    def render(self) -> str:
        lines = [
            f"  {self.rel(w.start)} .. {self.rel(w.end)}  {w.kind:16} {w.detail}"
            for w in self.windows
        ]
        return "\n".join(lines) or "  (no faults)"


@dataclass
class Op:
    """One request of the load: what, for whom, when, and how it ended."""

    kind: str
    tenant: str
    user: str
    start: float
    end: float = 0.0
    status: int | None = None
    error: str | None = None
    detail: str = ""
    body: str = ""
