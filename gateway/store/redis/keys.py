"""Every Redis key name the gateway uses, under one namespace, with the hash tags that keep Cluster slots.

Slots (the part in braces decides the Redis Cluster slot):
- `{tickets}` — tickets, raw payloads, idempotency records, the search indexes, the ticket→delivery maps
  and the outbox stream. Intake, save_ticket and enqueue are each ONE Lua script over this slot only.
- `{lane:NAME}` — one per destination: its four work streams (urgent, urgent-retry, normal,
  normal-retry), the due-retry sorted set, the lease sorted set, the dead-letter stream, the
  per-state indexes, the XAUTOCLAIM cursors, and each delivery's record and attempts. Claim, settle,
  reap and replay are each ONE Lua script over one lane's slot only.
- `{quarantine}` — quarantined payloads and their indexes (one MULTI per write).
- `{audit}` — the audit log stream and its per-ticket indexes (one MULTI per entry).
- `{alerts}` — alert records and their indexes by update and of those firing (one MULTI per save).
- cursors, locks, nonces, the lane registry: single keys, no tag needed.
The relay that moves an outbox entry from `{tickets}` into its lane is idempotent (the lane script
creates the delivery record only if it does not exist), so a crash between the two slots repeats
the move, never loses or doubles it. The namespace prefix sits outside the braces: several gateways
(or tests) can share one Redis, and their keys for a lane share a slot, which is harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.delivery import check_destination

GROUP = "workers"  # the consumer group on every lane stream
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


@dataclass(frozen=True)
class LaneKeys:
    """The keys of one delivery lane; all share the hash tag `{lane:NAME}`."""

    name: str
    tag: str

    def _k(self, suffix: str) -> str:
        return f"{self.tag}:{suffix}"

    @property
    def urgent(self) -> str:  # priority 0 (特急), fresh
        return self._k("urgent")

    @property
    def urgent_retry(self) -> str:
        return self._k("urgent-retry")

    @property
    def normal(self) -> str:
        return self._k("normal")

    @property
    def normal_retry(self) -> str:
        return self._k("normal-retry")

    @property
    def streams(self) -> tuple[str, str, str, str]:
        """In claim order: priority first, then fresh before retries."""
        return (self.urgent, self.urgent_retry, self.normal, self.normal_retry)

    @property
    def delayed(self) -> str:  # sorted set: delivery id scored by due time (ms)
        return self._k("delayed")

    @property
    def leases(self) -> str:  # sorted set: delivery id scored by lease end (ms)
        return self._k("leases")

    @property
    def dead(self) -> str:  # stream of dead letters
        return self._k("dead")

    @property
    def autoclaim_cursors(self) -> str:  # hash: stream key -> XAUTOCLAIM cursor
        return self._k("autoclaim")

    def state(self, state: str) -> str:  # sorted set: delivery ids in this state, scored by creation (ms)
        return self._k(f"state:{state}")

    @property
    def record_prefix(self) -> str:
        return self._k("d:")

    def record(self, delivery_id: str) -> str:  # hash: the delivery
        return self.record_prefix + delivery_id

    @property
    def attempts_prefix(self) -> str:
        return self._k("a:")

    @property
    def compacted_until(self) -> str:  # string: delivered deliveries created before this (ms) are compacted
        return self._k("compacted-until")

    @property
    def order_prefix(self) -> str:  # + ticket id: sorted set of its outstanding deliveries, in enqueue order
        return self._k("o:")

    def attempts(self, delivery_id: str) -> str:  # list of attempt JSON, oldest first
        return self.attempts_prefix + delivery_id

    # The sender's echo of the tickets whose status callbacks go on this lane (kept by RELAY and SETTLE).
    @property
    def echo_prefix(self) -> str:  # + ticket id: hash of the newest status reported and the newest heard
        return self._k("echo:")

    def echo(self, ticket_id: str) -> str:
        return self.echo_prefix + ticket_id

    @property
    def echo_waiting_prefix(self) -> str:  # + ticket id: sorted set of callbacks not yet heard, by status sequence
        return self._k("echo-wait:")

    def echo_waiting(self, ticket_id: str) -> str:
        return self.echo_waiting_prefix + ticket_id

    @property
    def behind(self) -> str:  # sorted set: ticket id scored by since when its partner is behind (ms)
        return self._k("behind")


class RedisKeys:
    """Key names under one namespace prefix (`hig` by default; tests use a fresh one each)."""

    def __init__(self, namespace: str = "hig") -> None:
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"Redis namespace {namespace!r}: use 1-64 of A-Z a-z 0-9 _ . : - (no braces)")
        self.namespace = namespace
        self._tickets = f"{namespace}:{{tickets}}"
        self._quarantine = f"{namespace}:{{quarantine}}"
        self._audit = f"{namespace}:{{audit}}"
        self._alerts = f"{namespace}:{{alerts}}"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of this namespace."""
        return f"{self.namespace}:*"

    # -- the {tickets} slot -----------------------------------------------------------------------
    def ticket(self, ticket_id: str) -> str:  # hash: json, seq, created, idem, ix:<name> values
        return f"{self._tickets}:t:{ticket_id}"

    def raw(self, ticket_id: str) -> str:  # hash: body, content_type
        return f"{self._tickets}:raw:{ticket_id}"

    def raw_version(self, ticket_id: str, key: str) -> str:  # hash: body, ctype, received (a later version's)
        return f"{self._tickets}:rawv:{ticket_id}:{key}"

    def idempotency(self, key: str) -> str:  # string: ticket id
        return f"{self._tickets}:idem:{key}"

    @property
    def index_prefix(self) -> str:
        return f"{self._tickets}:ix:"

    def index(self, name: str, value: str) -> str:  # set of ticket ids
        return f"{self.index_prefix}{name}:{value}"

    @property
    def link_prefix(self) -> str:
        return f"{self._tickets}:lk:"

    def link(self, link_key: str) -> str:  # sorted set: ticket ids under one link mark's hash, by receipt (ms)
        return f"{self.link_prefix}{link_key}"

    @property
    def source_numbers(self) -> str:  # hash: source_number_field(system, number) -> the ticket id holding it
        return f"{self._tickets}:source-numbers"

    @staticmethod
    def source_number_field(source_system: str, source_ticket_no: str) -> str:
        return f"{source_system}\t{source_ticket_no}"

    @property
    def source_numbers_filled(self) -> str:  # string: set once tickets stored before the numbers were kept hold theirs
        return f"{self._tickets}:source-numbers-filled"

    @property
    def tickets_by_time(self) -> str:  # sorted set: ticket id scored by intake time (ms)
        return f"{self._tickets}:by-time"

    @property
    def tickets_by_due(self) -> str:  # sorted set: ticket id scored by its running limits' earliest due day (ordinal)
        return f"{self._tickets}:by-due"

    @property
    def on_time_prefix(self) -> str:
        return f"{self._tickets}:on-time:"

    def on_time(self, day: str) -> str:  # hash: "org code\torg name\tkind\tmet|missed" -> limits ended that day
        return f"{self.on_time_prefix}{day}"

    @property
    def outbox(self) -> str:  # stream of deliveries not yet moved into their lane
        return f"{self._tickets}:outbox"

    @property
    def delivery_lanes(self) -> str:  # hash: delivery id -> lane name
        return f"{self._tickets}:delivery-lane"

    def ticket_deliveries(self, ticket_id: str) -> str:  # hash: delivery id -> lane name
        return f"{self._tickets}:td:{ticket_id}"

    @property
    def health_probe(self) -> str:  # string, expires: written by health() in the slot intake writes to
        return f"{self._tickets}:health-probe"

    # -- lanes ------------------------------------------------------------------------------------
    def lane(self, name: str) -> LaneKeys:
        check_destination(name)
        return LaneKeys(name=name, tag=f"{self.namespace}:{{lane:{name}}}")

    @property
    def phone_key_fingerprint(self) -> str:  # string: HMAC of a constant under the phone hash key in use
        return f"{self.namespace}:phone-key-fingerprint"

    @property
    def due_index_filled(self) -> str:  # string: set once tickets stored before the due-day index were indexed
        return f"{self._tickets}:by-due-filled"

    @property
    def lanes(self) -> str:  # set of lane names ever used
        return f"{self.namespace}:lanes"

    # -- quarantine -------------------------------------------------------------------------------
    def quarantined(self, quarantine_id: str) -> str:  # hash
        return self.quarantine_prefix + quarantine_id

    @property
    def quarantine_by_time(self) -> str:  # sorted set by receipt time (ms)
        return f"{self._quarantine}:by-time"

    def quarantine_by_adapter(self, adapter_id: str) -> str:
        return f"{self._quarantine}:by-adapter:{adapter_id}"

    @property
    def quarantine_open_prefix(self) -> str:  # + adapter id + ":" + payload digest: the open record's id (string)
        return f"{self._quarantine}:open:"

    def quarantine_open(self, adapter_id: str, digest: str) -> str:
        return f"{self.quarantine_open_prefix}{adapter_id}:{digest}"

    @property
    def quarantine_prefix(self) -> str:  # + quarantine id: the record
        return f"{self._quarantine}:q:"

    # -- the {audit} slot ---------------------------------------------------------------------------
    @property
    def audit(self) -> str:  # stream of audit entries, oldest first; never trimmed
        return f"{self._audit}:log"

    def audit_by_ticket(self, ticket_id: str) -> str:  # sorted set: audit stream ids about one ticket, by time
        return f"{self._audit}:ticket:{ticket_id}"

    def minute_counts(self, minute_ms: int) -> str:  # hash: series name -> count in that minute (expires)
        return f"{self.namespace}:counts:{minute_ms}"

    # -- the {alerts} slot --------------------------------------------------------------------------
    @property
    def alerts(self) -> str:  # hash: alert id -> its record (JSON)
        return f"{self._alerts}:records"

    @property
    def alerts_by_update(self) -> str:  # sorted set: alert id scored by its last update (ms)
        return f"{self._alerts}:by-update"

    @property
    def alerts_firing(self) -> str:  # sorted set: the ids of firing alerts, scored by their last update (ms)
        return f"{self._alerts}:firing"

    # -- single keys ------------------------------------------------------------------------------
    def cursor(self, adapter_id: str) -> str:
        return f"{self.namespace}:cursor:{adapter_id}"

    def lock(self, name: str) -> str:
        return f"{self.namespace}:lock:{name}"

    def nonce(self, scope: str, nonce: str) -> str:
        return f"{self.namespace}:nonce:{scope}:{nonce}"


def key_slot(key: str) -> int:
    """The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, mod 16384)."""
    data = key.encode("utf-8")
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc % 16384
