"""Who handles a ticket: the market-supervision organisations, their table generated from GB/T 2260, and the lookup
of the lowest organisation whose region covers a ticket.

Organisation codes are the gateway's own (the national organisation code table is not public):
``SJJ-<region code>`` for the 市场监督管理局 of a province, prefecture or county-level region (one per region,
so the code follows from the region), ``SJS-<county code>-<NN>`` for a 市场监督管理所 (station) of that county.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.config import AdapterConfig
from contracts.codesets import BusinessType, HandlerLevel
from contracts.identifiers import IdentifierError, Region, lookup_region, region_chain, regions_within
from contracts.ticket import Ticket
from contracts.yamldoc import YamlDocument, YamlDocumentError, YamlFileError, parse_yaml, validate_document

log = logging.getLogger(__name__)

BUREAU_CODE_PREFIX = "SJJ-"  # 市监局: the 市场监督管理局 of one GB/T 2260 region
STATION_CODE_PREFIX = "SJS-"  # 市监所: a station, numbered within its county
BUREAU_SUFFIX = "市场监督管理局"
_LEVELS = {"province": HandlerLevel.PROVINCE, "city": HandlerLevel.CITY, "county": HandlerLevel.COUNTY}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    level: HandlerLevel
    region_code: Annotated[str, Field(pattern=r"^\d{6}$")]
    parent: str | None = None
    areas: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)  # streets and towns a station covers

    @field_validator("region_code")
    @classmethod
    def _region_exists(cls, code: str) -> str:
        try:
            lookup_region(code)
        except IdentifierError as err:
            raise ValueError(err.reason) from None
        return code


class OrganisationTable(_Strict):
    organisations: list[Organisation]

    @model_validator(mode="after")
    def _codes_unique_and_parents_known(self) -> OrganisationTable:
        codes = [o.code for o in self.organisations]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"organisation codes must be unique: {', '.join(repeated)}")
        unknown = sorted({o.parent for o in self.organisations if o.parent and o.parent not in codes})
        if unknown:
            raise ValueError(f"unknown parent organisations: {', '.join(unknown)}")
        return self


class OrganisationFile(_Strict):
    """One organisations file: other files it builds on (the generated table), then its own organisations."""

    include: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    organisations: list[Organisation] = Field(default_factory=list)


# -- loading ------------------------------------------------------------------------------------------------
def load_organisations(path: Path) -> OrganisationTable:
    """The organisations of a file and of the files it includes (paths relative to it), included ones first.

    A code defined twice, a parent nobody defines, an include that is missing or circular: YamlFileError naming
    file, line and key of each."""
    where: dict[str, str] = {}  # organisation code → "file:line", for messages
    found: list[Organisation] = []
    parents: list[tuple[Organisation, YamlDocument, int]] = []  # checked once every file is read
    problems: list[str] = []

    def read(file: Path, including: tuple[Path, ...]) -> None:
        document = _document(file)
        content = validate_document(document, OrganisationFile)
        for i, name in enumerate(content.include):
            target = (file.parent / name).resolve()
            if target in including:
                problems.append(str(document.error(("include", i), f"{target} includes itself (through {file})")))
            elif not target.is_file():
                problems.append(str(document.error(("include", i), f"no organisations file at {target}")))
            else:
                read(target, (*including, target))
        for i, org in enumerate(content.organisations):
            if org.code in where:
                problems.append(str(document.error(("organisations", i, "code"),
                                                   f"{org.code} is already defined at {where[org.code]}")))
                continue
            where[org.code] = f"{file}:{document.line_of(('organisations', i))}"
            found.append(org)
            if org.parent is not None:
                parents.append((org, document, i))

    resolved = path.resolve()
    read(resolved, (resolved,))
    problems += [str(document.error(("organisations", i, "parent"), f"unknown parent organisation {org.parent}"))
                 for org, document, i in parents if org.parent not in where]
    if problems:
        raise YamlFileError(problems)
    return OrganisationTable(organisations=found)


def _document(file: Path) -> YamlDocument:
    try:
        return parse_yaml(file.read_text(encoding="utf-8"), str(file))
    except OSError as err:
        raise YamlFileError([f"{file}: cannot read: {err.strerror or err}"]) from err
    except UnicodeDecodeError as err:
        raise YamlFileError([f"{file}: not UTF-8 text: {err.reason} at byte {err.start}"]) from err
    except YamlDocumentError as err:
        raise YamlFileError([str(err)]) from err


# -- the generated table ------------------------------------------------------------------------------------
def bureau_code(region_code: str) -> str:
    return BUREAU_CODE_PREFIX + region_code


def bureau_name(region: Region, parent: Region | None) -> str:
    """The name of a region's 市场监督管理局, as the bodies call themselves: a city's district carries the city's
    name (贵阳市南明区市场监督管理局); counties, county-level cities and 特区 do not (都匀市市场监督管理局)."""
    district = region.name.endswith("区") and not region.name.endswith(("特区", "林区"))
    if district and parent is not None and parent.name.endswith("市"):
        return parent.name + region.name + BUREAU_SUFFIX
    return region.name + BUREAU_SUFFIX


def generate_organisations(province_code: str) -> OrganisationTable:
    """One 市场监督管理局 for the province and for each prefecture and county-level region in it (GB/T 2260),
    each linked to the bureau of the region above it."""
    province = lookup_region(province_code)
    if province.level != "province":
        raise IdentifierError("region_code", province_code,
                              f"{province.code} {province.name} is not a province-level region")
    organisations = []
    for region in regions_within(province.code):
        parent = lookup_region(region.parent_code) if region.parent_code else None
        organisations.append(Organisation(
            code=bureau_code(region.code), name=bureau_name(region, parent), level=_LEVELS[region.level],
            region_code=region.code, parent=bureau_code(parent.code) if parent else None))
    return OrganisationTable(organisations=organisations)


def render_organisations(province_code: str) -> str:
    """The generated table of a province as the YAML file committed under config/, one organisation a line."""
    province = lookup_region(province_code)
    table = generate_organisations(province_code)
    lines = [
        f"# GENERATED — do not edit. The 市场监督管理局 of {province.name} ({province.code}) and of every prefecture",
        "# and county-level region in it, from the GB/T 2260 table contracts/identifiers/data/regions.csv. Regenerate:",
        f"#   python main.py organisations generate --province {province.code} "
        f"--output config/organisations-{province.code}.yaml",
        "# Codes: SJJ-<region code>. Stations (市场监督管理所) and other bodies are configured by hand in",
        "# config/organisations.yaml, which includes this file (docs/integrators.md, \"Organisations and routing\").",
        "organisations:",
    ]
    for org in table.organisations:
        fields = {"code": org.code, "name": org.name, "level": org.level.value, "region_code": org.region_code}
        if org.parent is not None:
            fields["parent"] = org.parent
        body = ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
        lines.append(f"  - {{{body}}}")
    return "\n".join(lines) + "\n"


# -- the lookup ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Uncovered:
    """Regions an adapter brings tickets from whose handler would not be below the province."""

    regions: tuple[Region, ...]
    fallback: Organisation | None  # who would handle them instead (the province), or None: nobody here


class Handlers:
    """The lowest organisation whose region covers a ticket: station (by street) → county → prefecture → province.

    A ticket of this gateway's province (or of any province the table knows) whose region is below the province
    but has no bureau below it gets the province as handler *and* a warning on the ticket and in the log; a ticket
    from a province the table does not know is left to the national platform."""

    def __init__(self, table: OrganisationTable, home_region: str) -> None:
        self.organisations = table.organisations
        self.home_region = home_region
        self._by_region: dict[str, list[Organisation]] = {}  # looked up once per ticket: no scan of the table
        for org in self.organisations:
            self._by_region.setdefault(org.region_code, []).append(org)
        self._provinces = {_province_of(code) for code in (home_region, *self._by_region)} - {None}

    def assign(self, ticket: Ticket) -> Ticket:
        """Set the handling organisation from the ticket's region: the lowest level present for it.

        Complaints go where the respondent operates; reports where the conduct happened (the rules'
        jurisdiction articles). A region outside this gateway's area is left to the national platform.
        """
        return ticket.model_copy(update={"routing": ticket.routing.model_copy(update=self.handling(ticket))})

    def handling(self, ticket: Ticket) -> dict[str, object]:
        """What `assign` sets on the ticket's routing, as an update (intake makes it one copy with the deadlines
        and the jurisdiction decision: each copy of a ticket costs as much as working out its handler)."""
        if ticket.classification.business_type is BusinessType.REPORT:
            region = ticket.occurrence.incident_region_code or ticket.respondent.operating_region_code
        else:
            region = ticket.respondent.operating_region_code or ticket.occurrence.incident_region_code
        region = region or ticket.complainant.region_code or self.home_region
        org = self.organisation_for(region, _address_of(ticket))
        update: dict[str, object] = {
            "handler_org_code": org.code if org else None,
            "handler_org_name": org.name if org else None,
            "handler_level": org.level if org else HandlerLevel.NATION,
        }
        warning = self._warning(region, org)
        if warning is not None:
            log.warning("no handler below the province", extra={
                "ticket_id": ticket.ticket_id, "adapter_id": ticket.source.adapter_id, "region_code": region,
                "handler_org_code": org.code if org else None})
            if warning not in ticket.routing.warnings:
                update["warnings"] = [*ticket.routing.warnings, warning]
        return update

    def organisation_for(self, region: str, address: str = "") -> Organisation | None:
        """The station whose areas the address names, else the bureau, of the most specific region that has one."""
        try:
            chain = [r.code for r in region_chain(region)]
        except IdentifierError:
            chain = [region]
        for code in reversed(chain):  # most specific region first
            here = self._by_region.get(code, [])
            station = next((o for o in here if o.level is HandlerLevel.STATION
                            and any(area in address for area in o.areas)), None)
            if station is not None:
                return station
            office = next((o for o in here if o.level is not HandlerLevel.STATION), None)
            if office is not None:
                return office
        return None

    def below_province(self, region: str, org: Organisation | None) -> bool:
        """Whether `org` (the lookup's answer for `region`) is a proper handler: below the province, unless the
        region names only the province itself."""
        if org is not None and org.level not in (HandlerLevel.PROVINCE, HandlerLevel.NATION):
            return True
        try:
            return lookup_region(region).level == "province"
        except IdentifierError:
            return False

    def uncovered(self, region_code: str) -> Uncovered:
        """The regions at or under `region_code` (an adapter's region) without an organisation below the province."""
        missing = tuple(r for r in regions_within(region_code)
                        if not self.below_province(r.code, self.organisation_for(r.code)))
        province = _province_of(region_code)
        fallback = self.organisation_for(province) if province else None
        return Uncovered(missing, fallback)

    def _warning(self, region: str, org: Organisation | None) -> str | None:
        if self.below_province(region, org) or _province_of(region) not in self._provinces:
            return None
        name = _region_name(region)
        if org is None:
            return (f"no market-supervision organisation is configured for region {region} {name} or any region "
                    "above it; left to the national platform — add its bureau to the organisations table")
        return (f"no market-supervision organisation below the province is configured for region {region} {name}; "
                f"handled by {org.name} ({org.code}) — add the region's bureau to the organisations table")


def adapter_region_problems(configs: Mapping[str, AdapterConfig], handlers: Handlers,
                            organisations_file: Path) -> list[str]:
    """A configuration error for each adapter whose region (or a region under it) has no handler below the
    province: its tickets would silently land on the province. Names the adapter file, line and key."""
    problems = []
    for adapter_id, config in configs.items():
        uncovered = handlers.uncovered(config.region_code)
        if not uncovered.regions:
            continue
        listed = ", ".join(f"{r.code} {r.name}" for r in uncovered.regions[:5])
        more = f" and {len(uncovered.regions) - 5} more" if len(uncovered.regions) > 5 else ""
        instead = (f"their tickets would go to {uncovered.fallback.name} ({uncovered.fallback.code})"
                   if uncovered.fallback else "nobody here would handle their tickets")
        province = _province_of(config.region_code) or config.region_code
        message = (f"no market-supervision organisation below the province handles {listed}{more}: {instead}. "
                   f"Add their bureaus to {organisations_file}, or include the generated table "
                   f"(python main.py organisations generate --province {province})")
        problems.append(_at_region_code(config, adapter_id, message))
    return problems


def _at_region_code(config: AdapterConfig, adapter_id: str, message: str) -> str:
    file = config.source_file
    if file is None:
        return f"adapter {adapter_id}: region_code: {message}"
    try:
        return str(parse_yaml(file.read_text(encoding="utf-8"), str(file)).error(("region_code",), message))
    except (OSError, UnicodeDecodeError, YamlDocumentError):
        return f"{file}: region_code: {message}"


def _province_of(region: str) -> str | None:
    try:
        return region_chain(region)[0].code
    except IdentifierError:
        return None


def _region_name(region: str) -> str:
    try:
        return "".join(r.name for r in region_chain(region)[1:]) or lookup_region(region).name
    except IdentifierError:
        return "(not in GB/T 2260)"


def _address_of(ticket: Ticket) -> str:
    parts = (ticket.respondent.operating_address, ticket.occurrence.incident_address)
    return " ".join(p for p in parts if p)
