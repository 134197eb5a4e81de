"""How a flushed transcript becomes Graphiti episodes: deterministic ids, chunks and bodies.

Pure functions, no I/O: both the janitor and the tests rely on them giving the same answer
every time for the same transcript.
"""

import hashlib
import uuid
from dataclasses import dataclass

from contracts import Role

# uuid5 namespace for every id Synapse derives; fixed forever (changing it re-creates episodes).
SYNAPSE_NAMESPACE = uuid.UUID("5b0f3c1e-7d2a-4c55-9a3e-2f6d8c1b9e40")

# A transcript longer than this many characters of `speaker: text` lines is split into several
# episodes on turn boundaries (a single longer turn becomes its own chunk). Graphiti's extraction
# prompts embed the episode plus up to ten previous ones, so very long bodies cost quadratically
# more tokens and overflow small models' context.
MAX_EPISODE_CHARS = 12_000


def group_id(tenant_id: str, user_id: str) -> str:
    """Graphiti group for one (tenant, user): only [A-Za-z0-9_-], never shared by two pairs.

    A hash, not an escape, because Graphiti's group ids are short-ish labels in every query and
    an escaped 128+128 character pair would not be; 160 bits make a collision unthinkable.
    """
    digest = hashlib.sha256(f"{tenant_id}\x1f{user_id}".encode()).hexdigest()
    return f"syn_{digest[:40]}"


def episode_uuid(tenant_id: str, user_id: str, session_id: str, generation: int, chunk: int) -> str:
    name = f"episode\x1f{tenant_id}\x1f{user_id}\x1f{session_id}\x1f{generation}\x1f{chunk}"
    return str(uuid.uuid5(SYNAPSE_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    role: Role
    text: str
    timestamp: str


def render_line(line: TranscriptLine) -> str:
    # Graphiti's message episodes expect `speaker: text`; newlines inside a turn would start a
    # fake speaker line, so they are folded.
    text = " ".join(line.text.split())
    return f"{line.role}: {text}"


def chunk_transcript(
    lines: list[TranscriptLine], max_chars: int = MAX_EPISODE_CHARS
) -> list[list[TranscriptLine]]:
    chunks: list[list[TranscriptLine]] = []
    current: list[TranscriptLine] = []
    size = 0
    for line in lines:
        length = len(render_line(line)) + 1
        if current and size + length > max_chars:
            chunks.append(current)
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        chunks.append(current)
    return chunks


def episode_body(chunk: list[TranscriptLine]) -> str:
    return "\n".join(render_line(line) for line in chunk)
