"""How many people a ticket's text says were involved: "40多人", "三十余人", "上百人" read as at least 40, 30, 100."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = {"零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
           "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9}
_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000, "万": 10_000}
_CHINESE = "".join(_DIGITS) + "".join(_UNITS)
# "数十", "几百", "好几十": several tens or hundreds; read as two of them, the least the words can mean.
_SEVERAL = 2

# A count of people: an optional lead (上百, 近百, 数十, 超过), the number in Arabic or Chinese numerals, an
# optional approximation (多, 余, 来, 几), an optional classifier, then 人/名/位. Not 第3名 (a rank), not 人民币,
# 人工 or 人为 (人 starting another word), not 3位数.
_HEADCOUNT = re.compile(
    rf"(?<![第\d.{_CHINESE}])"
    r"(?P<lead>超过|好几|上|近|逾|过|超|数|几|约)?"
    rf"(?P<number>\d+(?:,\d{{3}})*(?:\.\d+)?[十百千万]*|[{_CHINESE}]+)"
    r"(?P<approx>多|余|来|几)?"
    r"(?:个)?"
    r"(?:人(?![民工为造身格性参均])|名(?!义|称|单|字|牌)|位(?![数置于]))"
)


@dataclass(frozen=True)
class Headcount:
    """The least number of people a phrase can mean, and the phrase as written (normalised)."""

    people: int
    phrase: str


def chinese_number(text: str) -> int | None:
    """An integer written in Chinese numerals (一百二十, 两千, 十五, 三四十 → 30); None when it is not one.

    Two digits side by side are a range (三四十 = thirty or forty): the lower one counts."""
    if not text or any(c not in _DIGITS and c not in _UNITS for c in text):
        return None
    total, section, digit = 0, 0, None
    previous_was_digit = False
    for char in text:
        if char in ("零", "〇"):  # a place holder (一百零五), not a digit of a range
            previous_was_digit = False
            continue
        if char in _DIGITS:
            if previous_was_digit:  # 三四十, 五六百: a range, keep the first
                continue
            digit = _DIGITS[char]
            previous_was_digit = True
            continue
        previous_was_digit = False
        unit = _UNITS[char]
        if unit == 10_000:
            total += ((section + (digit or 0)) or 1) * unit  # 万 alone (上万) is ten thousand
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * unit  # 十五 = 15, 百 = 100
            digit = None
    return total + section + (digit or 0)


def _number(text: str) -> int | None:
    match = re.fullmatch(r"(\d+(?:,\d{3})*(?:\.\d+)?)([十百千万]*)", text)
    if match is None:
        return chinese_number(text)
    value = float(match.group(1).replace(",", ""))
    for unit in match.group(2):
        value *= _UNITS[unit]
    return int(value)


def headcounts(text: str) -> list[Headcount]:
    """Every count of people in a normalised text (see `gateway.tickets.text.normalise`), in order."""
    found = []
    for match in _HEADCOUNT.finditer(text):
        value = _number(match.group("number"))
        if value is None or value == 0:
            continue
        lead = match.group("lead")
        if lead in ("数", "几", "好几"):
            value *= _SEVERAL
        elif lead == "近":  # 近百: close to a hundred, not quite
            value = value * 9 // 10
        found.append(Headcount(value, match.group(0)))
    return found


def most_people(text: str) -> Headcount | None:
    """The largest count of people a normalised text mentions; None when it mentions none."""
    counts = headcounts(text)
    return max(counts, key=lambda c: c.people) if counts else None
