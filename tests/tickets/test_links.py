"""Cross-line duplicates at intake on a real store: the same complainant about the same respondent on a similar
matter within the window is linked both ways with score and reasons; anything else is not; nothing is dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.loading import load_adapters
from adapters.secrets import credential_variables, ensure_demo_credentials
from contracts.codesets import Status
from contracts.status import StatusEvent
from contracts.ticket import Ticket, TicketLink
from gateway.app import create_app
from gateway.config import LinkSettings, load_settings
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeService
from gateway.tickets.links import LinkDecision, Linker, LinkRefused, compare, decide_link, link_marks, number_links_back
from gateway.tickets.national_link import record_registration_number
from tests.sample_tickets import make_ticket, ticket_data

FIXTURES = Path(__file__).resolve().parents[2] / "mapping" / "fixtures"
CITY = "city-12345-rest"
# The city fixture 01-food-complaint: 王小红 13985012345 against 凯里市惠民生活超市有限公司, expired yoghurt.
CITY_PHONE, CITY_USCC = "13985012345", "91522601MA6DL4KQ33"
SAME_MATTER = "消费者称其于2024年3月15日在惠民生活超市（营盘东路）买了两盒酸奶，回家发现已经过期，要求退款赔偿。"
OTHER_MATTER = "消费者反映在惠民生活超市办理的会员卡无法退卡，预付金额500元，商家拒绝退还。"


def city_payload(number: str = "KL12345-2024-031500057") -> tuple[dict[str, Any], bytes]:
    payload = json.loads((FIXTURES / CITY / "01-food-complaint.json").read_bytes())
    payload["hotlineNo"] = number
    return payload, json.dumps(payload, ensure_ascii=False).encode()


def canonical(no: str, *, content: str = SAME_MATTER, phone: str = CITY_PHONE, uscc: str | None = CITY_USCC,
              received: str = "2024-03-16T14:05:00+08:00", **changes: Any) -> tuple[dict[str, Any], bytes]:
    """A ticket pushed in the national standard by another line (a former 12315 registration system)."""
    fields: dict[str, Any] = {
        "source__source_received_at": received, "source__source_system": "line-12315",
        "registration__registered_at": received, "registration__title": "酸奶过期",
        "registration__content": content, "registration__request": "退款并赔偿",
        "complainant__name": "王小红", "complainant__phone": phone,
        "respondent__name": "凯里市惠民生活超市有限公司", "respondent__uscc": uscc,
        "respondent__operating_region_code": "522601"}
    data = ticket_data("complaint", no, **{**fields, **changes})
    del data["source"]["adapter_id"]
    return data, json.dumps(data, ensure_ascii=False).encode()


async def runtime_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, opened: bool = True, **env: str
                     ) -> Runtime:
    monkeypatch.setenv("HIG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HIG_CREDIT_LOOKUP__URL", "")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    configs = load_adapters(settings.resolve(settings.adapters_dir))
    for config in configs.values():
        for name, _ in credential_variables(config):
            monkeypatch.delenv(name, raising=False)
    ensure_demo_credentials(settings.resolved_data_dir, configs)
    store = SqliteStore(tmp_path / "gateway.db", b"links-test-key")
    runtime = Runtime.build(settings, store=store)
    if opened:
        await store.open()
    return runtime


@pytest.fixture
async def intake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IntakeService]:
    runtime = await runtime_on(tmp_path, monkeypatch)
    yield runtime.intake
    await runtime.store.close()


async def take(intake: IntakeService, adapter_id: str, sent: tuple[dict[str, Any], bytes]) -> Ticket:
    outcome = await intake.accept(adapter_id, sent[0], raw_body=sent[1], content_type="application/json")
    assert outcome.kind == "created", outcome
    assert outcome.ticket_id is not None
    ticket = await intake.store.get_ticket(outcome.ticket_id)
    assert ticket is not None
    return ticket


async def test_the_same_matter_through_two_lines_is_linked_on_both_tickets(intake: IntakeService) -> None:
    first = await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042"))

    (link,) = second.links
    assert (link.ticket_id, link.adapter_id, link.source_ticket_no, link.state) == (
        first.ticket_id, CITY, "KL12345-2024-031500057", "linked")
    assert link.score >= 0.6 and 0.5 < link.similarity < 1 and link.days_apart == pytest.approx(1.16, abs=0.01)
    assert "同一投诉人（联系电话相同）" in link.reasons
    assert "同一被投诉方（统一社会信用代码相同）" in link.reasons
    assert "同一被投诉方（名称与所在地区相同）" in link.reasons
    assert f"来源不同（{CITY} / canonical）" in link.reasons
    stored_first = await intake.store.get_ticket(first.ticket_id)
    assert stored_first is not None
    (back,) = stored_first.links
    assert (back.ticket_id, back.adapter_id, back.score, back.reasons) == (
        second.ticket_id, "canonical", link.score, link.reasons)


async def test_a_gateway_started_again_links_to_a_ticket_stored_before_it_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the link index lives in the process's memory: a new process reads it back from the file."""
    before = await runtime_on(tmp_path, monkeypatch)
    first = await take(before.intake, CITY, city_payload())
    await before.store.close()

    after = await runtime_on(tmp_path, monkeypatch)
    try:
        second = await take(after.intake, "canonical", canonical("GS12315-2024-0316-0042"))
        assert [link.ticket_id for link in second.links] == [first.ticket_id]
        shown = await after.store.get_ticket(first.ticket_id)
        assert shown is not None and [link.ticket_id for link in shown.links] == [second.ticket_id]
    finally:
        await after.store.close()


@pytest.mark.parametrize("linking", [True, False], ids=["linking-on", "linking-off"])
async def test_a_serving_gateway_reads_the_link_index_before_it_is_ready(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, linking: bool) -> None:
    """Read at start, not at the first push (which would wait for it: seconds at a million tickets); not at all
    when linking is off."""
    before = await runtime_on(tmp_path, monkeypatch)
    await take(before.intake, CITY, city_payload())
    await take(before.intake, "canonical", canonical("GS12315-2024-0316-0042"))
    await before.store.close()

    runtime = await runtime_on(tmp_path, monkeypatch, opened=False, HIG_WORKERS="false", HIG_POLLERS="false",
                               HIG_LINKS__ENABLED=str(linking).lower())
    app = create_app(runtime.settings, runtime=runtime)
    with caplog.at_level(logging.INFO):
        async with app.router.lifespan_context(app):
            assert app.state.ready
            said = [record.getMessage() for record in caplog.records]

    assert "gateway started" in said
    if linking:
        read = next(record for record in caplog.records if record.getMessage() == "link index read")
        assert read.rows == 2
        assert said.index("link index read") < said.index("gateway started")
    else:
        assert "link index read" not in said


async def test_both_linked_tickets_are_forwarded_and_the_forward_names_the_earlier_one(
        intake: IntakeService) -> None:
    first = await take(intake, CITY, city_payload())
    await intake.store.save_ticket(first.model_copy(update={"national_registration_no": "12315-2024-0000057"}), [])
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042"))

    for ticket in (first, second):
        (forward,) = await intake.store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id))
        assert forward.destination == "national"
    claimed = await intake.store.claim("national", "test-worker", 30, limit=10)
    (body,) = [c.body for c in claimed if c.ticket_id == second.ticket_id]
    (sent,) = Ticket.model_validate_json(body).links
    assert (sent.ticket_id, sent.national_registration_no) == (first.ticket_id, "12315-2024-0000057")


async def test_the_later_tickets_registration_number_reaches_the_link_the_earlier_one_shows(
        intake: IntakeService) -> None:
    """The earlier ticket's link back is written when the later one comes in, before the platform registers it:
    the number the platform answers the later ticket's forward with is then shown on that link too (and only
    there: the later ticket's own link, and a link back that has a number, are left as they are)."""
    first = await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042"))
    shown = await intake.store.get_ticket(first.ticket_id)
    assert shown is not None and [k.national_registration_no for k in shown.links] == [None]

    assert await record_registration_number(intake.store, second.ticket_id, "12315-2024-0000058")

    numbered = await intake.store.get_ticket(first.ticket_id)
    assert numbered is not None
    assert [(k.ticket_id, k.national_registration_no) for k in numbered.links] == [
        (second.ticket_id, "12315-2024-0000058")]
    assert numbered.lifecycle.revision == shown.lifecycle.revision + 1
    later = await intake.store.get_ticket(second.ticket_id)
    assert later is not None and later.national_registration_no == "12315-2024-0000058"
    assert [k.national_registration_no for k in later.links] == [None]  # the first has no number yet
    # The same answer again (a resent forward) changes nothing on either ticket.
    assert not await record_registration_number(intake.store, second.ticket_id, "12315-2024-0000058")
    again = await intake.store.get_ticket(first.ticket_id)
    assert again is not None and again.lifecycle.revision == numbered.lifecycle.revision
    # Asked again to number the links back (a status event naming it too), a link that has its number is left.
    assert await number_links_back(intake.store, later) == []
    kept = await intake.store.get_ticket(first.ticket_id)
    assert kept is not None and kept.lifecycle.revision == numbered.lifecycle.revision


async def test_a_status_event_bringing_the_registration_number_shows_it_on_the_link_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform may name the registration number first in a status event (its ACCEPTED, before the forward's
    answer is kept): the earlier ticket's link back then shows it as well."""
    runtime = await runtime_on(tmp_path, monkeypatch)
    try:
        first = await take(runtime.intake, CITY, city_payload())
        second = await take(runtime.intake, "canonical", canonical("GS12315-2024-0316-0042"))
        event = StatusEvent(event_id="evt-accepted-1", ticket_id=second.ticket_id, sequence=1,
                            at="2024-03-16T15:00:00+08:00", status=Status.ACCEPTED, org="凯里市市场监督管理局",
                            national_registration_no="12315-2024-0000059")

        outcome = await runtime.status.apply(event)

        assert outcome.decision.changed
        shown = await runtime.store.get_ticket(first.ticket_id)
        assert shown is not None
        assert [(k.ticket_id, k.national_registration_no) for k in shown.links] == [
            (second.ticket_id, "12315-2024-0000059")]
    finally:
        await runtime.store.close()


async def test_a_matter_reported_over_and_over_keeps_every_tickets_links_bounded(intake: IntakeService) -> None:
    """Fourteen reports of one matter: each new one names its best five (max_links in the demo configuration),
    and no stored ticket shows more than ten (its own and those back), so a storm of duplicates costs bounded
    reads and writes per intake."""
    first = await take(intake, CITY, city_payload())
    later = [await take(intake, "canonical", canonical(f"GS12315-2024-0316-{n:04d}",
                                                      received=f"2024-03-16T14:{n:02d}:00+08:00"))
             for n in range(14)]

    assert [len(ticket.links) for ticket in later] == [1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
    for ticket in (first, *later):
        stored = await intake.store.get_ticket(ticket.ticket_id)
        assert stored is not None and 1 <= len(stored.links) <= 10


async def test_another_matter_of_the_same_complainant_and_respondent_is_not_linked(intake: IntakeService) -> None:
    await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042", content=OTHER_MATTER,
                                                      registration__title="会员卡退卡"))
    assert second.links == []


async def test_another_complainant_is_not_linked(intake: IntakeService) -> None:
    await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042", phone="13985012346"))
    assert second.links == []


async def test_a_ticket_received_outside_the_window_is_not_linked(intake: IntakeService) -> None:
    await take(intake, CITY, city_payload())
    late = "2024-04-20T09:00:00+08:00"  # 36 days after the city ticket
    second = await take(intake, "canonical", canonical("GS12315-2024-0420-0001", received=late))
    assert second.links == []


async def test_id_number_and_respondent_name_with_region_link_without_phone_or_uscc(intake: IntakeService) -> None:
    first = await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical(
        "GS12315-2024-0316-0042", phone="13800138000", uscc=None, complainant__id_type="01",
        complainant__id_number="522601200109098873", respondent__name="凯里市 惠民生活超市有限公司"))

    (link,) = second.links
    assert link.ticket_id == first.ticket_id
    assert "同一投诉人（证件号码相同）" in link.reasons and "同一被投诉方（名称与所在地区相同）" in link.reasons
    assert "同一投诉人（联系电话相同）" not in link.reasons


async def test_an_operator_confirms_a_link_on_both_tickets_and_may_dismiss_it_later(intake: IntakeService) -> None:
    first = await take(intake, CITY, city_payload())
    second = await take(intake, "canonical", canonical("GS12315-2024-0316-0042"))

    decided = await decide_link(intake.store, second.ticket_id, first.ticket_id,
                                LinkDecision(decision="confirm", note="同一消费者就同一事项重复投诉"), actor="op-li")
    assert (decided.link.state, decided.link.decided_by) == ("confirmed", "op-li")
    assert decided.back is not None and decided.back.state == "confirmed"
    await decide_link(intake.store, first.ticket_id, second.ticket_id, LinkDecision(decision="dismiss"),
                      actor="op-wang")
    for ticket_id in (first.ticket_id, second.ticket_id):
        stored = await intake.store.get_ticket(ticket_id)
        assert stored is not None
        assert [(k.state, k.decided_by) for k in stored.links] == [("dismissed", "op-wang")]


async def test_deciding_a_link_that_does_not_exist_is_refused(intake: IntakeService) -> None:
    first = await take(intake, CITY, city_payload())
    with pytest.raises(LinkRefused):
        await decide_link(intake.store, first.ticket_id, "01J00000000000000000000000",
                          LinkDecision(decision="confirm"), actor="op-li")
    with pytest.raises(LinkRefused):
        await decide_link(intake.store, "01J00000000000000000000000", first.ticket_id,
                          LinkDecision(decision="confirm"), actor="op-li")


async def test_with_linking_off_nothing_is_linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = await runtime_on(tmp_path, monkeypatch, HIG_LINKS__ENABLED="false")
    try:
        await take(runtime.intake, CITY, city_payload())
        second = await take(runtime.intake, "canonical", canonical("GS12315-2024-0316-0042"))
        assert second.links == []
    finally:
        await runtime.store.close()


def test_a_ticket_without_complainant_or_respondent_has_no_marks() -> None:
    enquiry = make_ticket("enquiry")  # no complainant
    assert link_marks(enquiry) == []
    assert link_marks(make_ticket(respondent__uscc=None, respondent__operating_region_code=None)) == []


def test_tickets_sharing_only_the_complainant_do_not_pair() -> None:
    one = make_ticket(no="A1")
    other = make_ticket(no="A2", respondent__uscc="91522601MA6DL4KQ33", respondent__name="另一家店")
    assert compare(one, other, LinkSettings()) is None


def test_the_score_falls_with_time_apart() -> None:
    one = make_ticket(no="A1")
    near = make_ticket(no="A2", source__source_received_at="2024-06-12T09:30:00+08:00")
    far = make_ticket(no="A3", source__source_received_at="2024-07-05T09:30:00+08:00")
    near_pair, far_pair = compare(one, near, LinkSettings()), compare(one, far, LinkSettings())
    assert near_pair is not None and far_pair is not None
    assert near_pair.similarity == far_pair.similarity == 1.0
    assert far_pair.score < near_pair.score


EARLIER_1, EARLIER_2 = "01HZX0000000000000000000E1", "01HZX0000000000000000000E2"


def test_told_logs_each_linked_ticket_that_does_not_show_the_link_back(caplog: pytest.LogCaptureFixture) -> None:
    new = make_ticket("KL-3")
    linker = Linker(LinkSettings())
    assert linker.backs(new)[0] == {}  # no links, nothing to show back
    at = new.source.source_received_at
    new = new.model_copy(update={"links": [
        TicketLink(ticket_id=other, adapter_id="canonical", source_ticket_no=other, received_at=at, score=0.9,
                   similarity=0.9, days_apart=0.0, reasons=["同一投诉人（联系电话相同）"], linked_at=at)
        for other in (EARLIER_1, EARLIER_2)]})
    backs, most = linker.backs(new)
    assert sorted(backs) == [EARLIER_1, EARLIER_2] and most == 2 * LinkSettings().max_links
    assert {b.ticket_id for b in backs.values()} == {new.ticket_id}

    with caplog.at_level("INFO", logger="gateway.tickets.links"):
        linker.told(new, (EARLIER_1,))
        linker.told(new, None)  # other writers kept changing them: none shows it
    unshown = [r for r in caplog.records if r.getMessage().startswith("the earlier ticket does not show")]
    assert [r.__dict__["ticket_id"] for r in unshown] == [EARLIER_2, EARLIER_1, EARLIER_2]
    assert [r.levelname for r in caplog.records if r.getMessage() == "could not show the links on the earlier tickets"
            ] == ["ERROR"]
