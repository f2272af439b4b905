"""GB/T 2260 administrative division codes: look a region up by code or name and walk up to its province."""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from contracts.identifiers.errors import IdentifierError

RegionLevel = Literal["province", "city", "county"]

_KIND = "region_code"
_LEVELS: dict[str, RegionLevel] = {"province": "province", "city": "city", "county": "county"}


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    parent_code: str | None
    level: RegionLevel


@dataclass(frozen=True, slots=True)
class _RegionTable:
    by_code: dict[str, Region]
    by_name: dict[str, tuple[Region, ...]]
    children: dict[str, tuple[Region, ...]]


@functools.cache
def _table() -> _RegionTable:
    text = resources.files("contracts.identifiers").joinpath("data/regions.csv").read_text(encoding="utf-8")
    by_code: dict[str, Region] = {}
    by_name: dict[str, list[Region]] = {}
    children: dict[str, list[Region]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        level = _LEVELS.get(row["level"])
        if level is None:
            raise ValueError(f"regions.csv: code {row['code']} has unknown level {row['level']!r}")
        region = Region(
            code=row["code"], name=row["name"], parent_code=row["parent_code"] or None, level=level
        )
        by_code[region.code] = region
        by_name.setdefault(region.name, []).append(region)
        if region.parent_code is not None:
            children.setdefault(region.parent_code, []).append(region)
    return _RegionTable(by_code, {name: tuple(regions) for name, regions in by_name.items()},
                        {code: tuple(sorted(regions, key=_by_code)) for code, regions in children.items()})


def lookup_region(code: str) -> Region:
    """The region a six-digit code names in the current table."""
    normalised = code.strip()
    if len(normalised) != 6 or not normalised.isascii() or not normalised.isdigit():
        raise IdentifierError(_KIND, code, f"a region code has 6 digits, got {len(normalised)} characters")
    region = _table().by_code.get(normalised)
    if region is None:
        raise IdentifierError(_KIND, code, f"region code {normalised} is not in the current GB/T 2260 table")
    return region


def region_chain(code: str) -> list[Region]:
    """The region and its ancestors, province first (two items for a district of a municipality)."""
    chain = [lookup_region(code)]
    while (parent := chain[-1].parent_code) is not None:
        chain.append(lookup_region(parent))
    chain.reverse()
    return chain


def regions_within(code: str) -> list[Region]:
    """The region and every region under it, each parent before its children, in code order."""
    found = [lookup_region(code)]
    for region in _table().children.get(found[0].code, ()):
        found.extend(regions_within(region.code))
    return found


def region_by_name(name: str, within: str | None = None) -> Region:
    """The one region called ``name``, or else the one whose name starts with it ("凯里" → 凯里市).

    ``within`` (a region code or a name) narrows the search to that region and what lies under it, which
    is how a name used in several provinces (朝阳区, 鼓楼区) is made unique.
    """
    wanted = name.strip()
    if not wanted:
        raise IdentifierError(_KIND, name, "a region name is empty")
    table = _table()
    scope: Region | None = None
    if within is not None:
        scope = lookup_region(within) if within.strip().isdigit() else region_by_name(within)

    def in_scope(region: Region) -> bool:
        return scope is None or any(link.code == scope.code for link in region_chain(region.code))

    candidates = [region for region in table.by_name.get(wanted, ()) if in_scope(region)]
    if not candidates and len(wanted) >= 2:
        # Partners often drop the suffix (市, 县, 苗族侗族自治州); a unique prefix match is safe to take.
        candidates = [
            region
            for region_name, regions in table.by_name.items()
            if region_name.startswith(wanted)
            for region in regions
            if in_scope(region)
        ]
    where = f" within {scope.name} ({scope.code})" if scope is not None else ""
    if not candidates:
        raise IdentifierError(_KIND, name, f"no region is named {wanted!r}{where}")
    if len(candidates) > 1:
        listed = ", ".join(f"{region.name} {region.code}" for region in sorted(candidates, key=_by_code)[:10])
        raise IdentifierError(
            _KIND,
            name,
            f"region name {wanted!r} is ambiguous{where}: it matches {listed}; say which province or city",
        )
    return candidates[0]


def _by_code(region: Region) -> str:
    return region.code


def is_known_province(prefix2: str) -> bool:
    """Whether two digits start a province-level code (the one part of an old code that still holds)."""
    region = _table().by_code.get(prefix2 + "0000")
    return region is not None and region.level == "province"
