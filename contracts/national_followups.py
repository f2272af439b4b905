"""A follow-up on the wire to the national platform: an update, urge or withdrawal of the same registration (never
a second one), and the platform's signed answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from contracts.base import ContractModel
from contracts.followups import Key, Text, VersionText
from contracts.ticket import Ticket

NationalOperation = Literal["update", "urge", "withdraw"]
# The path of follow-ups beside the registration URL (…/api/v1/tickets → …/api/v1/tickets/follow-ups).
FOLLOW_UPS_PATH = "follow-ups"


def registration_key(ticket: Ticket) -> str:
    """The key the national platform registers the ticket under, and its follow-ups name: its first version's
    idempotency key, whichever version the ticket has reached since."""
    versions = ticket.sender_updates.versions
    if versions:
        return versions[0].idempotency_key
    assert ticket.idempotency_key is not None  # the contract fills it in
    return ticket.idempotency_key


class NationalFollowUp(ContractModel):
    """The body of a follow-up the gateway sends the national platform (`POST …/tickets/follow-ups`): an update,
    urge or withdrawal of the registration made under `registration_key` (the first version's idempotency key)."""

    operation: NationalOperation
    registration_key: Key
    national_registration_no: Annotated[str, Field(max_length=64)] | None = None
    ticket_id: Annotated[str, Field(min_length=1, max_length=64)]
    key: Key  # the follow-up's own: a version's idempotency key, an urge's or a withdrawal's
    version: VersionText | None = None  # update
    ticket: Ticket | None = None  # update: the ticket as it now stands
    at: AwareDatetime
    text: Text | None = None  # urge: its words; withdrawal: its reason; update: a supplement's material

    @model_validator(mode="after")
    def _update_carries_ticket(self) -> NationalFollowUp:
        if self.operation == "update" and (self.ticket is None or self.version is None):
            raise ValueError("ticket: an update carries the ticket as it now stands, and its version")
        return self


NationalOutcome = Literal["updated", "repeat", "recorded", "accepted", "refused"]


class NationalFollowUpAnswer(ContractModel):
    """The national platform's (signed) answer to a follow-up."""

    operation: NationalOperation
    outcome: NationalOutcome
    national_registration_no: Annotated[str, Field(max_length=64)]
    key: Key
    version: VersionText | None = None  # update: the version the platform now holds
    urge_count: Annotated[int, Field(ge=0)] | None = None  # urge: how many the platform counts
    reason: Annotated[str, Field(max_length=500)] | None = None  # refused: why
