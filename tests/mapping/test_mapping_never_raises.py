"""Whatever a partner sends, mapping answers with a Ticket, errors or a return to sender — never an exception."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping import Mapped, Noticed, Rejected, Returned, apply, default_specs
from mapping.engine import _apply
from mapping.goldens import fixtures_of, read_payload

ADAPTERS = sorted(default_specs())

# Text with every kind of character, lone surrogates (json.loads makes them from "\ud800") included.
weird_text = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(
    ["", " ", "无", "\u3000", "null", "2024-02-30 25:61", "１３９０８５５１２３４", "-0", "1e999", "NaN", "Ⅳ",
     "市场监管_"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**18, max_value=10**5000)  # longer than int→str allows (4300 digits)
    | st.floats(allow_nan=False, allow_infinity=False)
    | weird_text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(weird_text, children, max_size=6),
    max_leaves=25,
)


# Small stand-ins for a fixture's values: cheap to draw at every key of every fixture.
replacements = st.recursive(
    scalars, lambda children: st.lists(children, max_size=3) | st.dictionaries(weird_text, children, max_size=3),
    max_leaves=4,
)


def mutated(value: Any) -> st.SearchStrategy[Any]:
    """A fixture with any of its values kept, dropped, replaced by other JSON, or mutated further down."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({}, optional={key: mutated(item) for key, item in value.items()})
    if isinstance(value, list) and value:
        return st.lists(mutated(value[0]), max_size=4) | replacements
    return st.just(value) | replacements


def check(result: object) -> None:
    assert isinstance(result, Mapped | Rejected | Returned | Noticed)
    if isinstance(result, Rejected):
        assert result.errors
        assert all(error.rule != "internal" for error in result.errors), result.errors
        json.dumps([error.model_dump() for error in (*result.errors, *result.warnings)], ensure_ascii=False)
    if isinstance(result, Mapped):
        result.ticket.model_dump_json()


@pytest.mark.parametrize("adapter_id", ADAPTERS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values)
def test_arbitrary_json_maps_to_a_result(adapter_id: str, data: Any) -> None:
    check(apply(default_specs()[adapter_id], data))


@functools.cache
def mutated_fixtures(adapter_id: str) -> st.SearchStrategy[Any]:
    spec = default_specs()[adapter_id]
    return st.one_of([mutated(read_payload(fixture.path, spec)) for fixture in fixtures_of(adapter_id)])


@pytest.mark.parametrize("adapter_id", ADAPTERS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_fixture_with_any_field_replaced_maps_to_a_result(adapter_id: str, data: st.DataObject) -> None:
    check(apply(default_specs()[adapter_id], data.draw(mutated_fixtures(adapter_id), label="payload")))


def test_an_unexpected_failure_inside_the_engine_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("mapping.engine._apply", broken)
    result = apply(default_specs()["city-12345-rest"], {"hotlineNo": "KL12345-2024-031500057"})
    assert isinstance(result, Rejected)
    assert [(error.field, error.rule) for error in result.errors] == [("(ticket)", "internal")]
    assert _apply is not broken
