"""Adapter files in config/adapters/: checked at load, every problem naming file, line and key; credentials by env."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from adapters.config import AdapterConfigError, MissingCredential
from adapters.loading import load_adapters, mapping_specs_for
from mapping.spec import SpecError
from simulators.peer import DEV_CREDENTIALS
from tests.adapters.adapter_support import DEMO_ADAPTERS, REPO

GOOD = """\
id: new-partner
kind: rest
partner_system: new-partner
region_code: "522600"
mapping_spec: canonical
push: true
auth:
  api_key_env: NEW_PARTNER_KEY
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(AdapterConfigError) as caught:
        load_adapters(folder)
    return caught.value.problems


def test_the_demo_configuration_loads_one_adapter_per_rest_partner_and_canonical() -> None:
    configs = load_adapters(DEMO_ADAPTERS)

    assert {"city-12345-rest", "legacy-registration", "enforcement-case", "credit-supervision",
            "emergency-command", "canonical"} <= set(configs)
    assert configs["legacy-registration"].poll is not None
    assert configs["city-12345-rest"].push


def test_every_demo_adapter_names_a_spec_that_serves_it() -> None:
    configs = load_adapters(DEMO_ADAPTERS)

    specs = mapping_specs_for(configs)

    assert {c.id for c in configs.values() if not c.is_canonical} <= set(specs)


def test_the_repository_holds_no_credential_values_in_adapter_files() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DEMO_ADAPTERS.glob("*.yaml"))

    assert "whsec_" not in text
    assert not [value for value in DEV_CREDENTIALS.values() if value in text]


def test_env_example_names_every_credential_the_demo_adapters_read_and_holds_no_value() -> None:
    from adapters.secrets import credential_variables

    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    listed = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    needed = {name for config in load_adapters(DEMO_ADAPTERS).values() for name, _ in credential_variables(config)}

    assert needed <= set(listed)
    assert set(listed.values()) == {""}


def test_a_value_of_the_wrong_type_names_file_line_and_key(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("push: true", "push: sometimes"))

    [problem] = problems_of(tmp_path)

    assert re.match(rf"{re.escape(str(tmp_path / 'new-partner.yaml'))}:6: push: ", problem)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace('region_code: "522600"\n', ""))

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:1: region_code: Field required" in problem


def test_an_unknown_key_is_named_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD + "  api_key: do-not-put-keys-here\n")

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:9: auth.api_key: Extra inputs are not permitted" in problem


def test_an_unknown_region_code_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace('"522600"', '"522699"'))

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:4: region_code:" in problem
    assert "522699" in problem


def test_an_unknown_kind_is_named_with_the_kinds_there_are(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("kind: rest", "kind: carrier-pigeon"))

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:2: kind: unknown adapter kind 'carrier-pigeon'; known kinds:" in problem


def test_the_file_is_named_after_the_adapter_id(tmp_path: Path) -> None:
    write(tmp_path, "partner.yaml", GOOD)

    [problem] = problems_of(tmp_path)

    assert "partner.yaml:1: id: the file of adapter 'new-partner' must be named new-partner.yaml" in problem


def test_an_adapter_that_takes_pushes_must_authenticate_them(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.split("auth:")[0])

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:6: push: Value error, an adapter that takes pushes needs auth.api_key_env" in problem


def test_a_credential_value_where_a_variable_name_belongs_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("NEW_PARTNER_KEY", "s3cr3t-key-value"))

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:8: auth.api_key_env: String should match pattern" in problem


def test_an_unknown_rest_option_is_named_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD + "options:\n  items_paht: data.records\n")

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:10: options.items_paht: Extra inputs are not permitted" in problem


def test_a_json_path_option_with_bad_syntax_is_named(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD + "options:\n  items_path: data..records\n")

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:10: options.items_path: path 'data..records': empty key" in problem


def test_a_rest_callback_must_be_signed(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD + "callback:\n  url: http://127.0.0.1:9/cb\n")

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:9: callback: rest callbacks are signed" in problem


def test_a_poll_needs_somewhere_to_poll(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD + "poll:\n  interval_seconds: 30s\n")

    [problem] = problems_of(tmp_path)

    assert "new-partner.yaml:9: poll: Value error, poll needs a url (REST) or an operation (SOAP)" in problem


def test_a_mapping_spec_that_does_not_exist_is_named(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("mapping_spec: canonical", "mapping_spec: specs/new.yaml"))

    [problem] = problems_of(tmp_path)

    assert f"new-partner.yaml:5: mapping_spec: no mapping spec at {tmp_path / 'specs' / 'new.yaml'}" in problem


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("kind: rest", "kind: nope"))
    write(tmp_path, "other-partner.yaml", GOOD.replace("new-partner", "other-partner").replace("push: true", "push: 3"))

    problems = problems_of(tmp_path)

    assert [Path(p.split(":")[0]).name for p in problems] == ["new-partner.yaml", "other-partner.yaml"]


def test_files_starting_with_an_underscore_are_drafts_and_skipped(tmp_path: Path) -> None:
    write(tmp_path, "_draft.yaml", "this: is not an adapter\n")
    write(tmp_path, "new-partner.yaml", GOOD)

    assert list(load_adapters(tmp_path)) == ["new-partner"]


def test_a_spec_serving_another_adapter_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "new-partner.yaml", GOOD.replace("mapping_spec: canonical", "mapping_spec: city-12345-rest"))

    with pytest.raises(SpecError, match="is the spec of adapter 'city-12345-rest', not of 'new-partner'"):
        mapping_specs_for(load_adapters(tmp_path))


# -- credentials ------------------------------------------------------------------------------------
def test_an_api_key_is_read_from_its_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "new-partner.yaml", GOOD)
    monkeypatch.setenv("NEW_PARTNER_KEY", "k-123")

    auth = load_adapters(tmp_path)["new-partner"].auth

    assert auth.api_key_digest() == hashlib.sha256(b"k-123").digest()


def test_an_api_key_may_be_configured_as_its_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "new-partner.yaml", GOOD)
    digest = hashlib.sha256(b"k-123").hexdigest()
    monkeypatch.setenv("NEW_PARTNER_KEY", f"sha256:{digest}")

    assert load_adapters(tmp_path)["new-partner"].auth.api_key_digest() == bytes.fromhex(digest)


def test_an_unset_credential_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "new-partner.yaml", GOOD)
    monkeypatch.delenv("NEW_PARTNER_KEY", raising=False)

    with pytest.raises(MissingCredential, match="environment variable NEW_PARTNER_KEY is not set"):
        load_adapters(tmp_path)["new-partner"].auth.api_key_digest()


def test_callback_secrets_list_the_current_one_first_for_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = load_adapters(DEMO_ADAPTERS)
    monkeypatch.setenv("PARTNER_CITY12345_CALLBACK_SECRET", "whsec_bmV3LWtleQ==, whsec_b2xkLWtleQ==")

    callback = configs["city-12345-rest"].callback
    assert callback is not None
    assert callback.secrets() == ["whsec_bmV3LWtleQ==", "whsec_b2xkLWtleQ=="]

