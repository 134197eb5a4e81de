"""Narrative entity types that Graphiti extracts from session transcripts.

They feed `GET /session/brief`. Each class docstring becomes the type description in Graphiti's
extraction prompt, and the field descriptions guide attribute extraction. Field names must not
clash with Graphiti's own EntityNode fields (uuid, name, group_id, labels, created_at,
name_embedding, summary, attributes).
"""

from pydantic import BaseModel, Field


class MentalState(BaseModel):
    """The user's mood, feeling or energy as they express it ("I'm exhausted", "I feel great")."""

    mood: str | None = Field(
        default=None, description="One or two words for the feeling, e.g. Frustrated, Excited."
    )
    energy_level: str | None = Field(
        default=None, description="Low, Medium or High when the user's energy is apparent."
    )


class Tension(BaseModel):
    """An open loop: something the user needs to do, is worried about, or is waiting on."""

    description: str | None = Field(
        default=None, description="A short phrase naming the open item, e.g. Book the dentist."
    )
    status: str | None = Field(
        default=None, description="unresolved while open; resolved once the user says it is done."
    )


class Environment(BaseModel):
    """Where the user is and what it is like there ("I'm at a noisy cafe")."""

    location_type: str | None = Field(
        default=None, description="The kind of place, e.g. Cafe, Office, Home, Train."
    )
    vibe: str | None = Field(
        default=None, description="What the place feels like, e.g. Noisy, Quiet, Busy."
    )


NARRATIVE_ENTITY_TYPES: dict[str, type[BaseModel]] = {
    "MentalState": MentalState,
    "Tension": Tension,
    "Environment": Environment,
}

NARRATIVE_EXTRACTION_INSTRUCTIONS = """\
Besides people, places and things, also extract the user's inner state and open loops, which the
general rules would otherwise skip:
- MentalState: when the user expresses a feeling, mood or energy level, extract one entity named
  after the feeling (e.g. "Frustrated") with its mood and energy_level.
- Tension: when the user needs to do something, is worried about something or is waiting on
  something, extract one entity named after that item (e.g. "Book the dentist") with status
  "unresolved"; if the user says it is done, status "resolved".
- Environment: when the user says where they are, extract one entity named after the place kind
  (e.g. "Cafe") with location_type and vibe.
"""
