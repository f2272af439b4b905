"""Partner follow-ups (补充材料, 催办, 撤诉/撤回) of a known ticket: the notice a spec maps, and the ticket's record
of its versions, urges and withdrawal."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from contracts.base import ContractModel

FollowUpKind = Literal["supplement", "urge", "withdrawal"]
# stale: a version older than the one the ticket holds, come late (its raw payload kept, nothing applied).
VersionKind = Literal["original", "new_version", "supplement", "stale"]
ScreenOutcome = Literal["accept", "return", "review"]

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Reference = Annotated[str, Field(min_length=1, max_length=64)]
VersionText = Annotated[str, Field(min_length=1, max_length=32)]
Key = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

_DIGITS = re.compile(r"^\d+$")


def version_order(version: str) -> tuple[int, int, str]:
    """How versions sort: whole numbers by value ("10" after "9"), ahead of any other text, which sorts as text."""
    if _DIGITS.match(version):
        return (1, int(version), "")
    return (0, 0, version)


def newer(version: str, than: str) -> bool:
    """Whether `version` is a later version than `than` (an equal or older one is a repeat)."""
    return version_order(version) > version_order(than)


def next_version(version: str) -> str:
    """The version after `version`, for a supplement that names none: the next whole number."""
    order = version_order(version)
    return str(order[1] + 1) if order[0] == 1 else "2"


class FollowUpNotice(ContractModel):
    """What a partner says about a ticket it sent before, mapped from its own payload by the spec's follow-up rule."""

    kind: FollowUpKind
    source_system: Annotated[str, Field(min_length=1, max_length=64)]
    adapter_id: Annotated[str, Field(min_length=1, max_length=64)]
    source_ticket_no: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-./:]+$")]
    at: AwareDatetime
    text: Text | None = None  # the supplement, the urge's words, the withdrawal's reason
    version: VersionText | None = None  # a supplement's version, when the partner numbers it
    reference: Reference | None = None  # the partner's own number of this follow-up (催办单号 …)
    requested_by: Annotated[str, Field(max_length=100)] | None = None

    @model_validator(mode="after")
    def _supplement_says_something(self) -> FollowUpNotice:
        if self.kind == "supplement" and self.text is None:
            raise ValueError("text: a supplement (补充材料) carries the added material")
        return self

    @property
    def key(self) -> str:
        """What makes two notices the same one (a partner sending again): its kind, ticket and own number, or
        when it has none, its time and words."""
        said = self.reference or f"{self.at.isoformat()}\x1f{self.text or ''}"
        return follow_up_key(self.kind, self.source_system, self.source_ticket_no, said)


def follow_up_key(kind: FollowUpKind, source_system: str, source_ticket_no: str, said: str) -> str:
    """The key of a follow-up of a ticket: its kind, the ticket's source and what identifies this one."""
    material = "\x1f".join((kind, source_system, source_ticket_no, said))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class TicketVersion(ContractModel):
    """One version of the source ticket the gateway took: the first, a new version, or a supplement."""

    version: VersionText
    kind: VersionKind
    received_at: AwareDatetime  # when the gateway took it
    idempotency_key: Key  # hash(source_system, source_ticket_no, version): the raw payload is kept under it
    changed: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=20)
    text: Text | None = None  # a supplement's material
    reference: Reference | None = None
    notice_key: Key | None = None  # a supplement's FollowUpNotice.key: the same supplement again is a repeat
    national_answered_at: AwareDatetime | None = None  # the national platform took the update
    screened: ScreenOutcome | None = None  # the jurisdiction screen's outcome on this version (None: no screen)
    held: bool = False  # screened return/review: its update waits for an operator instead of going to the platform


class Urge(ContractModel):
    """One 催办 from the sender: recorded, forwarded, counted."""

    key: Key
    at: AwareDatetime  # when the partner urged
    received_at: AwareDatetime
    text: Text | None = None
    reference: Reference | None = None
    requested_by: Annotated[str, Field(max_length=100)] | None = None
    national_answered_at: AwareDatetime | None = None


WithdrawalState = Literal["requested", "accepted", "refused"]


class Withdrawal(ContractModel):
    """The sender's 撤诉/撤回: forwarded; the national platform accepts it (its WITHDRAWN status event follows)
    or refuses it (the matter has gone too far)."""

    key: Key
    at: AwareDatetime
    received_at: AwareDatetime
    text: Text | None = None
    reference: Reference | None = None
    requested_by: Annotated[str, Field(max_length=100)] | None = None
    state: WithdrawalState = "requested"
    national_answered_at: AwareDatetime | None = None
    national_reason: Annotated[str, Field(max_length=500)] | None = None


URGES_KEPT = 200  # the count goes on; the list keeps the latest


class SenderUpdates(ContractModel):
    """What the sender said after its first submission: the versions taken, its urges, its withdrawal."""

    versions: list[TicketVersion] = Field(default_factory=list, max_length=200)
    urges: list[Urge] = Field(default_factory=list, max_length=URGES_KEPT)
    urge_count: Annotated[int, Field(ge=0)] = 0
    withdrawal: Withdrawal | None = None

    def held_versions(self) -> list[TicketVersion]:
        """The versions whose national update waits for an operator's jurisdiction decision."""
        return [v for v in self.versions if v.held]
