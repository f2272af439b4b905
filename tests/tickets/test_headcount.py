"""Head counts in a ticket's text: how many people it says were involved, in Arabic or Chinese numerals."""

from __future__ import annotations

import pytest

from gateway.tickets.headcount import chinese_number, most_people
from gateway.tickets.text import normalise


def people(text: str) -> int | None:
    found = most_people(normalise(text))
    return None if found is None else found.people


@pytest.mark.parametrize(("text", "expected"), [
    ("学校食堂午餐后40多人出现呕吐", 40),
    ("三十余人就餐后腹泻", 30),
    ("上百人聚集在门店讨说法", 100),
    ("近百名会员要求退费", 90),
    ("数十人围堵", 20),
    ("二十几个人", 20),
    ("三四十人到场", 30),
    ("100多名学生", 100),
    ("共计1,200人", 1200),
    ("两百多名会员", 200),
    ("一百二十人", 120),
    ("一百零五人", 105),
    ("十几人", 10),
    ("上万人", 10000),
    ("涉及1.5万人", 15000),
    ("３０人（全角数字）", 30),
    ("超过30人", 30),
    ("四十多位老人", 40),
    ("两位顾客", 2),
])
def test_a_count_of_people_is_read_as_the_least_it_can_mean(text: str, expected: int) -> None:
    assert people(text) == expected


@pytest.mark.parametrize("text", [
    "支付100元人民币",          # 人 begins another word
    "拨打12345人工服务",
    "获得比赛第3名",            # a rank
    "第十三名",
    "验证码是6位数",
    "人数不详",
    "购买酸奶2盒",
])
def test_numbers_that_do_not_count_people_are_not_read_as_people(text: str) -> None:
    assert people(text) is None


def test_the_largest_count_in_a_text_is_the_one_that_matters() -> None:
    found = most_people(normalise("起初3人不适，后来共40多人出现呕吐"))
    assert found is not None and (found.people, found.phrase) == (40, "40多人")


@pytest.mark.parametrize(("numeral", "value"), [
    ("十", 10), ("十五", 15), ("二十", 20), ("一百二十", 120), ("两千零三十", 2030), ("一万二千", 12000),
    ("五六百", 500), ("叁拾", 30),
])
def test_chinese_numerals_are_read(numeral: str, value: int) -> None:
    assert chinese_number(numeral) == value


def test_text_that_is_not_a_numeral_is_none() -> None:
    assert chinese_number("十人") is None and chinese_number("") is None
