"""Chinese text as rules see it: a ticket's words normalised once (full-width, case, spaces, common traditional
forms) for the jurisdiction screen and routing alike, matched against phrase sets with exclusions."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.ticket import Ticket
from gateway.tickets.headcount import Headcount, most_people

# Traditional forms of characters that the shipped rules' phrases use, mapped to the simplified ones. Cheap
# (one str.translate) and enough for a ticket typed on a traditional keyboard to meet the same phrases;
# anything rarer is left as written.
_TRADITIONAL = (
    "藥药價价質质廣广鄰邻稅税醫医療疗糾纠紛纷護护環环燈灯號号車车務务勞劳動动爭争議议業业場场監监費费買买賣卖"
    "網网購购貨货單单電电話话險险衛卫學学師师擾扰聲声員员據据證证無无營营經经標标計计妝妆設设備备飲饮髮发發发"
    "過过問问題题報报舉举訴诉詐诈騙骗詢询諮咨權权專专約约條条預预貸贷銀银會会長长門门東东園园區区縣县鄉乡鎮镇"
    "熱热氣气體体溫温廳厅廠厂壞坏處处罰罚應应災灾傷伤國国們们這这個个來来時时對对說说裡里後后還还沒没讓让錢钱"
    "給给點点開开關关療疗衆众眾众險险寵宠物物濫滥噪噪鬧闹樓楼鋪铺價价格格餘余飯饭館馆廚厨蟲虫黴霉腸肠嘔呕瀉泻"
    "級级別别嚴严違违規规紀纪錄录異异聯联絡络訊讯碼码遊游戲戏盜盗竊窃詳详細细術术雜杂誌志紅红綠绿黃黄藍蓝噸吨幣币"
)
_TO_SIMPLIFIED = str.maketrans(dict(zip(_TRADITIONAL[0::2], _TRADITIONAL[1::2], strict=True)))


def _compatibility_forms() -> dict[int, str]:
    """NFKC of each character that it changes (full-width forms, the ideographic space, circled numbers,
    compatibility ideographs…), in the planes Chinese text uses: one str.translate then does, character by
    character, what NFKC does (three times faster than unicodedata.normalize on a ticket's text)."""
    planes = (range(0x80, 0xD800), range(0xE000, 0x10000), range(0x1F100, 0x1F300), range(0x2F800, 0x2FA20))
    return {cp: folded.translate(_TO_SIMPLIFIED) for plane in planes for cp in plane
            if (folded := unicodedata.normalize("NFKC", chr(cp))) != chr(cp)}


_FOLD = _compatibility_forms() | _TO_SIMPLIFIED  # a traditional form is folded to its simplified one


@lru_cache(maxsize=1024)
def normalise(text: str) -> str:
    """Full-width letters, digits and punctuation to half-width (NFKC), lower case, no spaces, simplified forms.
    Cached: the screen and routing read the same field strings of one ticket (a model copy shares them)."""
    if not text.isascii():
        text = text.translate(_FOLD)
    return "".join(text.lower().split())


# Texts with nothing in common: a phrase set that finds something in each of them finds something in every
# ticket (a pattern such as "." or "\S"), which is a mistake, not a rule.
_UNRELATED = ("a", "7", "。", "乙", "test")


class PhraseSet(BaseModel):
    """Matches a text that contains one of `any_of` or matches one of `patterns`, unless it contains one of
    `none_of` (a 食品 mentioned inside a traffic complaint does not make it a food matter). Refused when it
    matches any text at all: the jurisdiction screen and the routing rules alike would match every ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    any_of: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list)
    patterns: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    none_of: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list)

    @field_validator("any_of", "none_of")
    @classmethod
    def _phrases_say_something(cls, phrases: list[str]) -> list[str]:
        for phrase in phrases:
            if not normalise(phrase):
                raise ValueError(f"phrase {phrase!r} is empty once spaces are removed: it would match every text")
        return phrases

    @field_validator("patterns")
    @classmethod
    def _patterns_compile_and_discriminate(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from err
            if compiled.search("") is not None:
                raise ValueError(f"pattern {pattern!r} matches the empty text: it would match every text")
        return patterns

    @model_validator(mode="after")
    def _discriminates(self) -> PhraseSet:
        if not self.any_of and not self.patterns:
            raise ValueError("a phrase set needs any_of or patterns")
        if all(self.find(normalise(text)) is not None for text in _UNRELATED):
            raise ValueError("this phrase set matches any text at all (every ticket would match): "
                             "give phrases or patterns that say something")
        return self

    @cached_property
    def matcher(self) -> _Matcher:
        """The set compiled, once: kept in the instance's __dict__, so later reads are plain attribute reads (a
        pydantic private attribute costs microseconds a read, and rules run on every ticket)."""
        return _Matcher(tuple(normalise(p) for p in self.any_of), tuple(re.compile(p) for p in self.patterns),
                        tuple(normalise(p) for p in self.none_of))

    def find(self, normalised: str) -> str | None:
        """The phrase or pattern text that matched in an already normalised text; None when none did or an
        exclusion is present."""
        return self.matcher.find(normalised)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """A phrase set compiled: normalised phrases and exclusions, compiled patterns."""

    phrases: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]
    exclusions: tuple[str, ...]

    def find(self, normalised: str) -> str | None:
        for phrase in self.exclusions:
            if phrase in normalised:
                return None
        for phrase in self.phrases:
            if phrase in normalised:
                return phrase
        for regex in self.regexes:
            match = regex.search(normalised)
            if match is not None:
                return match.group(0)
        return None


class TicketText:
    """The words rules read, normalised once per ticket: title, content, request and keywords, each by its field."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket

    @cached_property
    def parts(self) -> tuple[tuple[str, str], ...]:
        r = self.ticket.registration
        found = (("registration.title", r.title), ("registration.content", r.content),
                 ("registration.request", r.request),
                 ("registration.keywords", ",".join(r.keywords) if r.keywords else None))
        return tuple((name, normalise(text)) for name, text in found if text)

    @cached_property
    def whole(self) -> str:
        return "\n".join(text for _, text in self.parts)  # normalised text has no line breaks: no match spans two

    @cached_property
    def most_people(self) -> tuple[str, Headcount] | None:
        """The largest count of people the text mentions, with the field it is in (read once per ticket)."""
        return max(((field, count) for field, part in self.parts if (count := most_people(part)) is not None),
                   key=lambda found: found[1].people, default=None)

    def field_of(self, matched: str) -> str:
        """The first field whose text holds what matched."""
        return next((name for name, text in self.parts if matched in text), "registration")
