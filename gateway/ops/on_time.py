"""On-time rates (办理时效): how the statutory time limits that ended in a span of days held, per handling
organisation and per limit, from the store's on-time counts; and the dashboard's bars of them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict, computed_field

from gateway.store.base import OnTimeCount

LIMIT_LABELS = {"acceptance": "受理时限", "mediation": "调解时限", "clue_check": "线索核查时限",
                "reporter_notice": "告知举报人时限", "jurisdiction_dispute": "管辖争议时限"}
NO_HANDLER = "（未指定承办单位）"
# The longest span of days one answer covers (Redis reads one hash per day).
MAX_ON_TIME_DAYS = 366
# The dashboard's bars: this wide at 100 %, this many organisations at most (the worst rates first).
BAR_WIDTH = 360
BAR_ROWS = 15


class OnTimeRate(BaseModel):
    """Ended time limits of one organisation or one kind of limit: met, missed, and the share met."""

    model_config = ConfigDict(frozen=True)

    key: str  # the organisation's code ("" without a handler) or the limit's kind
    label: str
    met: int
    missed: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ended(self) -> int:
        return self.met + self.missed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rate(self) -> float:
        """The share of the ended limits that were met (0 when none ended)."""
        return round(self.met / self.ended, 4) if self.ended else 0.0

    @property
    def percent(self) -> str:
        return f"{self.rate * 100:.1f}%"

    def bar(self, width: int = BAR_WIDTH) -> tuple[float, float]:
        """The widths of the met and the missed part of this rate's bar."""
        met = width * self.rate
        return round(met, 1), round(width - met, 1) if self.ended else 0.0


class OnTimeReport(BaseModel):
    """办理时效 over the days from `since` to `until` (inclusive, China time), by the day each limit ended."""

    model_config = ConfigDict(frozen=True)

    since: date
    until: date
    by_org: list[OnTimeRate]
    by_limit: list[OnTimeRate]
    by_org_and_limit: list[OnTimeRate]  # key "org code/kind", in the order of by_org, then of the law
    met: int
    missed: int

    @property
    def worst_orgs(self) -> list[OnTimeRate]:
        return sorted(self.by_org, key=lambda r: (r.rate, -r.ended))[:BAR_ROWS]


def on_time_report(counts: Sequence[OnTimeCount], since: date, until: date) -> OnTimeReport:
    """The rates per organisation (most limits first) and per limit (in the order of the law) from the counts."""
    names: dict[str, str] = {}
    orgs: dict[str, Counter[str]] = defaultdict(Counter)
    limits: dict[str, Counter[str]] = defaultdict(Counter)
    for c in counts:
        names[c.handler_org_code] = c.handler_org_name or NO_HANDLER
        for tally in (orgs[c.handler_org_code], limits[c.kind]):
            tally["met"] += c.met
            tally["missed"] += c.missed
    by_org = sorted((OnTimeRate(key=code, label=names[code], met=t["met"], missed=t["missed"])
                     for code, t in orgs.items()), key=lambda r: (-r.ended, r.key))
    order = {kind: i for i, kind in enumerate(LIMIT_LABELS)}
    by_limit = [OnTimeRate(key=kind, label=LIMIT_LABELS.get(kind, kind), met=t["met"], missed=t["missed"])
                for kind, t in sorted(limits.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]
    place = {r.key: i for i, r in enumerate(by_org)}
    by_both = [OnTimeRate(key=f"{c.handler_org_code}/{c.kind}",
                          label=f"{names[c.handler_org_code]} · {LIMIT_LABELS.get(c.kind, c.kind)}", met=c.met,
                          missed=c.missed)
               for c in sorted(counts, key=lambda c: (place[c.handler_org_code], order.get(c.kind, len(order))))]
    return OnTimeReport(since=since, until=until, by_org=by_org, by_limit=by_limit, by_org_and_limit=by_both,
                        met=sum(r.met for r in by_limit), missed=sum(r.missed for r in by_limit))
