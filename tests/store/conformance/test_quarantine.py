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


async def test_a_returned_remap_closes_the_record_with_the_notes_of_its_return(store: Store) -> None:
    mapping = [FieldError(field="registration.content", rule="required", message="缺少诉求内容")]
    qid = await store.quarantine("city-12345-rest", b'{"hotlineNo":"KL-Q-RET"}', "application/json", mapping)
    assert (await store.get_quarantined(qid)).returned is False  # type: ignore[union-attr]
    notes = [FieldError(field="(ticket)", rule="returned:1", message="噪音扰民属生态环境部门职责"),
             FieldError(field="routing.jurisdiction", rule="jurisdiction:return.noise-neighbours",
                        message="主管部门：生态环境部门；命中：registration.content=噪音")]

    await store.return_quarantined(qid, notes)

    got = await store.get_quarantined(qid)
    assert got is not None
    assert got.errors == tuple(notes) and got.returned is True
    assert got.resolved_ticket_id is None and got.times_seen == 1
    [listed] = await store.list_quarantined("city-12345-rest")
    assert listed.errors == tuple(notes)


async def test_returning_an_unknown_quarantine_id_raises_unknown_quarantine(store: Store) -> None:
    with pytest.raises(UnknownQuarantine):
        await store.return_quarantined("01J0000000000000000000NONE", [])
    assert await store.get_quarantined("01J0000000000000000000NONE") is None  # nothing half-made


async def test_the_same_payload_from_the_same_adapter_is_one_record_counted_while_unresolved(store: Store) -> None:
    body = b'{"contactPhone":"138001","hotlineNo":"KL-Q-1"}'
    first = [FieldError(field="complainant.phone", rule="invalid_phone", message="too few digits", value="138001")]
    latest = [FieldError(field="complainant.phone", rule="invalid_phone", message="still too few digits")]
    qid = await store.quarantine("city-12345-rest", body, "application/json", first)
    again = await store.quarantine("city-12345-rest", body, "application/json", first)
    third = await store.quarantine("city-12345-rest", body, "application/json", latest)
    assert again == qid and third == qid

    got = await store.get_quarantined(qid)
    assert got is not None
    assert got.times_seen == 3
    assert got.last_seen_at is not None and got.last_seen_at >= got.received_at
    assert got.errors == tuple(latest)  # the errors of the latest time it came
    assert [q.quarantine_id for q in await store.list_quarantined()] == [qid]
    assert (await store.intake_stats(["city-12345-rest"]))["city-12345-rest"]["quarantine_open"] == 1


async def test_another_adapter_another_body_or_another_content_type_is_another_record(store: Store) -> None:
    body = b"<order><infoid>Q-2</infoid></order>"
    base = await store.quarantine("province-12345-soap", body, "text/xml", [])
    others = {
        await store.quarantine("legacy-registration", body, "text/xml", []),
        await store.quarantine("province-12345-soap", body + b" ", "text/xml", []),
        await store.quarantine("province-12345-soap", body, "application/json", []),
    }
    assert base not in others and len(others) == 3
    for qid in (base, *others):
        got = await store.get_quarantined(qid)
        assert got is not None and got.times_seen == 1 and got.last_seen_at == got.received_at


async def test_after_it_is_resolved_the_same_payload_again_is_a_new_record(store: Store) -> None:
    body = b'{"hotlineNo":"KL-Q-3"}'
    qid = await store.quarantine("city-12345-rest", body, "application/json", [])
    await store.resolve_quarantined(qid, "01J0RESOLVEDTICKET00000000")
    fresh = await store.quarantine("city-12345-rest", body, "application/json", [])
    assert fresh != qid
    again = await store.quarantine("city-12345-rest", body, "application/json", [])
    assert again == fresh
    old, new = await store.get_quarantined(qid), await store.get_quarantined(fresh)
    assert old is not None and old.times_seen == 1 and old.resolved_ticket_id == "01J0RESOLVEDTICKET00000000"
    assert new is not None and new.times_seen == 2 and new.resolved_ticket_id is None
