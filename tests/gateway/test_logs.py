"""Log lines are JSON, one event per line, and never show personal data in clear."""

from __future__ import annotations

import json
import logging

from gateway.logs import JsonLineFormatter, MaskedTextFormatter, mask_text


def test_phone_and_id_numbers_in_free_text_are_masked() -> None:
    masked = mask_text("来电 13800138000，固话 0855-8274966，身份证 11010519491231002X")
    assert "13800138000" not in masked and "8274966" not in masked and "19491231" not in masked
    assert "138****8000" in masked and "110105********X" in masked


def test_each_kind_of_personal_data_is_masked_when_it_is_the_only_thing_in_the_text() -> None:
    # The masking skips text that holds none of `:`, `=`, `@` or seven digits in a row: each kind alone must
    # still open that gate.
    assert mask_text("13800138000") == "138****8000"
    assert mask_text("0855-8274966") == "0855-****966"
    assert mask_text("11010519491231002X") == "110105********X"
    assert mask_text("yang.mou@example.cn") == "y***@example.cn"
    assert mask_text("contact_name=杨某某") == "contact_name=杨**"
    assert mask_text("'visitorname': '张桂芬'") == "'visitorname': '张**'"
    assert mask_text("ticket stored 01J0000000000000000000000A city-12345") == (
        "ticket stored 01J0000000000000000000000A city-12345")


def test_a_log_line_is_one_json_object_with_ticket_and_adapter_and_masked_fields() -> None:
    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, "ticket stored for %s", ("13800138000",), None)
    record.ticket_id = "01J0000000000000000000000A"
    record.adapter_id = "city-12345-rest"
    record.complainant = {"name": "杨某某", "phone": "+8613800138000", "address": "凯里市北京东路1号"}
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["ticket_id"] == "01J0000000000000000000000A"
    assert entry["adapter_id"] == "city-12345-rest"
    assert "13800138000" not in line and "杨某某" not in line and "北京东路" not in line


def test_an_extra_named_event_does_not_replace_the_message() -> None:
    record = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "no holiday data for year %d", (2030,), None)
    record.event = "calendar_fallback"
    entry = json.loads(JsonLineFormatter().format(record))
    assert entry["event"] == "no holiday data for year 2030"
    assert entry["extra_event"] == "calendar_fallback"


def test_the_calendar_fallback_warning_keeps_its_text_in_a_json_line() -> None:
    from datetime import date

    from gateway.tickets.deadlines import WorkingDayCalendar

    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[method-assign]
    logger = logging.getLogger("gateway.tickets.deadlines.calendar")
    logger.addHandler(handler)
    try:
        WorkingDayCalendar().is_working_day(date(2031, 3, 3))
    finally:
        logger.removeHandler(handler)
    entry = json.loads(JsonLineFormatter().format(captured[0]))
    assert entry["event"].startswith("no holiday data for year 2031")


def test_plain_text_lines_mask_the_message_and_the_extras() -> None:
    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, "来电 %s", ("13800138000",), None)
    record.complainant = {"name": "杨某某", "phone": "13800138000"}
    record.reason = "visitorname='杨某某' mail yang@example.com"
    line = MaskedTextFormatter().format(record)
    assert "13800138000" not in line and "杨某某" not in line and "yang@example.com" not in line
    assert "138****8000" in line and "reason=" in line
