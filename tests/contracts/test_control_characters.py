"""The control-character policy's cheap question: does any text of a payload hold one (values, not keys)."""

from __future__ import annotations

from contracts.base import holds_control_characters


def test_text_with_tabs_and_line_breaks_holds_none() -> None:
    assert not holds_control_characters({"content": "第一行\r\n第二行\t完", "n": 3, "ok": True, "none": None})


def test_a_control_character_deep_inside_lists_and_objects_is_found() -> None:
    payload = {"a": [{"b": ["正常", {"c": "转义\x1b[31m"}]}], "d": "正常"}
    assert holds_control_characters(payload)


def test_a_nul_del_and_a_c1_control_are_each_found_alone() -> None:
    for control in ("\x00", "\x7f", "\x85"):
        assert holds_control_characters({"x": f"甲{control}乙"}), repr(control)


def test_texts_are_not_run_together_into_a_control_character() -> None:
    assert not holds_control_characters(["\\", "x1b", "\\u0000"])


def test_keys_are_not_text_of_the_payload() -> None:
    assert not holds_control_characters({"\x01key": "value"})
