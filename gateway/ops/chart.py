"""The dashboard's chart: counts per minute gathered into steps and drawn as inline SVG polylines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.ops import counts as series

CHART_POINTS = 72  # the chart's resolution: 6 hours in 5-minute steps, 1 hour in minutes


@dataclass(frozen=True)
class Chart:
    """Counts per step over the last hours, drawn as inline SVG polylines."""

    width: int
    height: int
    top: int
    starts: list[datetime]
    values: dict[str, list[int]]
    peak: int
    step_minutes: int = 5

    @property
    def hours(self) -> float:
        return len(self.starts) * self.step_minutes / 60

    def points(self, name: str) -> str:
        data = self.values.get(name, [])
        if not data:
            return ""
        step = self.width / max(len(data) - 1, 1)
        scale = (self.height - self.top) / max(self.peak, 1)
        return " ".join(f"{i * step:.1f},{self.height - v * scale:.1f}" for i, v in enumerate(data))

    def total(self, name: str) -> int:
        return sum(self.values.get(name, []))

    def ticks(self) -> list[tuple[float, str]]:
        if len(self.starts) < 2:
            return []
        every = max(len(self.starts) // 6, 1)
        step = self.width / (len(self.starts) - 1)
        china = timedelta(hours=8)
        return [(i * step, (self.starts[i] + china).strftime("%H:%M")) for i in range(0, len(self.starts), every)]


def chart_of(per_minute: dict[datetime, dict[str, int]], now: datetime, hours: float) -> Chart:
    """The last `hours` up to `now` in about CHART_POINTS steps, from counts per minute."""
    now = series.minute_of(now)
    minutes = max(1, round(hours * 60 / CHART_POINTS))  # ~CHART_POINTS points, whatever the span
    step = timedelta(minutes=minutes)
    buckets = max(int(hours * 60 / minutes), 2)
    last = now - timedelta(minutes=(now.hour * 60 + now.minute) % minutes)
    first = last - step * (buckets - 1)
    starts = [first + step * i for i in range(buckets)]
    values = {name: [0] * buckets for name in series.SERIES}
    for minute, counts in per_minute.items():
        index = int((minute - first) / step)
        if 0 <= index < buckets:
            for name, n in counts.items():
                if name in values:
                    values[name][index] += n
    peak = max([max(v) for v in values.values()] + [1])
    return Chart(width=720, height=180, top=10, starts=starts, values=values, peak=peak, step_minutes=minutes)
