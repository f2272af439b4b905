"""Adapter kinds by name: built-ins loaded on first use, kinds registered in code, third-party entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from adapters.base import Adapter, PullBatch, PulledTicket
from adapters.config import AdapterConfig
from adapters.registry import ENTRY_POINT_GROUP, AdapterKindError, AdapterRegistry, build_adapters
from adapters.rest import RestAdapter
from adapters.wire.senders import Sender


class ParcelAdapter(Adapter):
    """A kind a test registers in code."""

    kind = "parcel"

    async def pull(self, since_cursor: str | None) -> PullBatch:
        return PullBatch(items=[])

    async def acknowledge(self, items: Sequence[PulledTicket]) -> None:
        return None

    def callback_sender(self) -> Sender | None:
        return None


def config(kind: str, **changes: object) -> AdapterConfig:
    data: dict[str, object] = {"id": "demo-adapter", "kind": kind, "partner_system": "demo",
                               "region_code": "522600", "mapping_spec": "canonical"}
    return AdapterConfig.model_validate(data | changes)


def test_the_rest_kind_is_built_in() -> None:
    assert AdapterRegistry().get("rest") is RestAdapter


def test_built_in_kinds_are_known_by_name_before_their_module_is_imported() -> None:
    registry = AdapterRegistry(builtins={"rest": "adapters.rest:RestAdapter", "soap": "no_such_module:SoapAdapter"})

    assert registry.names() >= ["rest", "soap"]


def test_a_built_in_kind_whose_module_cannot_be_imported_fails_alone_naming_the_module() -> None:
    registry = AdapterRegistry(builtins={"rest": "adapters.rest:RestAdapter", "soap": "no_such_module:SoapAdapter"})

    with pytest.raises(AdapterKindError, match="cannot import no_such_module"):
        registry.get("soap")
    assert registry.get("rest") is RestAdapter


def test_a_kind_registered_in_code_builds_its_adapter() -> None:
    registry = AdapterRegistry()
    registry.register(ParcelAdapter)

    adapter = registry.build(config("parcel"))

    assert isinstance(adapter, ParcelAdapter)
    assert "parcel" in registry.names()


def test_a_kind_name_cannot_be_registered_twice_without_replace() -> None:
    class OtherParcel(ParcelAdapter):
        pass

    registry = AdapterRegistry()
    registry.register(ParcelAdapter)

    with pytest.raises(AdapterKindError, match="already registered"):
        registry.register(OtherParcel, name="parcel")
    registry.register(OtherParcel, name="parcel", replace=True)


def test_only_adapter_subclasses_can_be_registered() -> None:
    with pytest.raises(AdapterKindError, match="not a subclass"):
        AdapterRegistry().register(dict, name="dict")  # type: ignore[arg-type]


def test_an_unknown_kind_names_the_kinds_that_exist() -> None:
    with pytest.raises(AdapterKindError, match=r"unknown adapter kind 'ftp'; known kinds: .*rest"):
        AdapterRegistry().get("ftp")


def test_an_adapter_is_built_only_as_the_kind_it_is_configured_as() -> None:
    with pytest.raises(ValueError, match="configured kind 'rest' built as kind 'parcel'"):
        ParcelAdapter(config("rest"))


def test_build_adapters_leaves_out_disabled_adapters() -> None:
    on = config("rest", id="on-adapter")
    off = config("rest", id="off-adapter", enabled=False)

    assert list(build_adapters({"on-adapter": on, "off-adapter": off})) == ["on-adapter"]


# -- entry points: a real, tiny installed distribution on sys.path ------------------------------------
PLUGIN_MODULE = '''
"""A third-party adapter kind, installed as a distribution with an entry point."""
from adapters.base import Adapter, PullBatch


class FtpDropAdapter(Adapter):
    kind = "ftpdrop"

    async def pull(self, since_cursor):
        return PullBatch(items=[], next_cursor=since_cursor)

    async def acknowledge(self, items):
        return None

    def callback_sender(self):
        return None


class Misnamed(FtpDropAdapter):
    kind = "something-else"


NOT_AN_ADAPTER = object()
'''


def install_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """Write `<name>` as an installed distribution: the module, METADATA and entry_points.txt."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    info = site / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8")
    lines = "\n".join(f"{kind} = {target}" for kind, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A site directory on sys.path, removed again (with the modules imported from it) afterwards."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.startswith("hig_plugin")]:
            del sys.modules[name]


def test_a_third_party_kind_is_found_through_its_entry_point(site: Path) -> None:
    install_distribution(site, "hig-plugin-ftpdrop", {"ftpdrop": "hig_plugin_ftpdrop:FtpDropAdapter"})
    registry = AdapterRegistry()

    assert "ftpdrop" in registry.names()
    kind = registry.get("ftpdrop")
    assert kind.__name__ == "FtpDropAdapter"
    assert registry.build(config("ftpdrop")).kind == "ftpdrop"


def test_an_entry_point_that_is_not_an_adapter_is_refused_naming_it(site: Path) -> None:
    install_distribution(site, "hig-plugin-broken", {"broken": "hig_plugin_broken:NOT_AN_ADAPTER"})

    with pytest.raises(AdapterKindError, match=r"entry point hig_plugin_broken:NOT_AN_ADAPTER.*not a subclass"):
        AdapterRegistry().get("broken")


def test_an_entry_point_whose_class_declares_another_kind_is_refused(site: Path) -> None:
    install_distribution(site, "hig-plugin-misnamed", {"misnamed": "hig_plugin_misnamed:Misnamed"})

    with pytest.raises(AdapterKindError, match="declares kind 'something-else'"):
        AdapterRegistry().get("misnamed")


def test_an_entry_point_that_cannot_be_imported_names_itself(site: Path) -> None:
    install_distribution(site, "hig-plugin-missing", {"missing": "hig_plugin_not_there:Adapter"})

    with pytest.raises(AdapterKindError, match=r"entry point hig_plugin_not_there:Adapter\): cannot load"):
        AdapterRegistry().get("missing")


def test_a_kind_offered_by_two_distributions_is_refused_as_ambiguous(site: Path) -> None:
    install_distribution(site, "hig-plugin-one", {"twice": "hig_plugin_one:FtpDropAdapter"})
    install_distribution(site, "hig-plugin-two", {"twice": "hig_plugin_two:FtpDropAdapter"})

    with pytest.raises(AdapterKindError, match="several entry points"):
        AdapterRegistry().get("twice")


def test_an_adapter_file_may_use_a_third_party_kind(site: Path, tmp_path: Path) -> None:
    from adapters.loading import load_adapters

    install_distribution(site, "hig-plugin-ftpdrop", {"ftpdrop": "hig_plugin_ftpdrop:FtpDropAdapter"})
    folder = tmp_path / "adapters"
    folder.mkdir()
    (folder / "ftp-partner.yaml").write_text(textwrap.dedent("""\
        id: ftp-partner
        kind: ftpdrop
        partner_system: ftp-partner
        region_code: "522600"
        mapping_spec: canonical
        """), encoding="utf-8")

    assert load_adapters(folder, registry=AdapterRegistry())["ftp-partner"].kind == "ftpdrop"
