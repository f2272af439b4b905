"""The quarantine role (QuarantineStore) on every backend: payloads kept with their errors until resolved."""

from __future__ import annotations

import pytest

from contracts.errors import FieldError
from gateway.store import Store, UnknownQuarantine


async def test_quarantine_round_trip(store: Store) -> None:
    errors = [FieldError(field="complainant.phone", rule="invalid_phone", message="the phone number has too few digits",
                         value="138001", source_path="$.contactPhone")]
    qid = await store.quarantine("city-12345-rest", b'{"contactPhone":"138001"}', "application/json", errors)
    other = await store.quarantine("prov-12345-soap", b"<x/>", "text/xml", [])

    got = await store.get_quarantined(qid)
    assert got is not None
    assert (got.adapter_id, got.body, got.content_type, got.errors) == (
        "city-12345-rest", b'{"contactPhone":"138001"}', "application/json", tuple(errors))
    assert got.resolved_ticket_id is None
    assert [q.quarantine_id for q in await store.list_quarantined()] == [other, qid]
    assert [q.quarantine_id for q in await store.list_quarantined("city-12345-rest")] == [qid]

    await store.resolve_quarantined(qid, "01J0RESOLVEDTICKET00000000")
    resolved = await store.get_quarantined(qid)
    assert resolved is not None and resolved.resolved_ticket_id == "01J0RESOLVEDTICKET00000000"
    assert await store.get_quarantined("nope") is None


async def test_resolving_an_unknown_quarantine_id_raises_unknown_quarantine(store: Store) -> None:
    with pytest.raises(UnknownQuarantine):
        await store.resolve_quarantined("01J0000000000000000000NONE", "01J0RESOLVEDTICKET00000000")
    assert await store.get_quarantined("01J0000000000000000000NONE") is None  # nothing half-made
