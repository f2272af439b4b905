"""POST /api/v1/inbound/{adapter_id}/tickets: a partner pushes its own JSON; stored, repeated, kept or refused."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from adapters.config import MissingCredential
from adapters.loading import load_adapters
from gateway.http.deps import inbound_context as from_app_state
from gateway.http.fast_path import PushFastPath
from gateway.http.inbound import INBOUND_PUSH, InboundContext, IntakeOutcomeView, inbound_router
from simulators.peer import encode_json, hmac_headers, load_fixtures, serve_in_thread, with_fresh_number
from tests.adapters.adapter_support import (
    JURISDICTION_FILE,
    SPECS_DIR,
    GatewayUnderTest,
    copy_adapter_dir,
    serve_gateway,
)
from tests.sample_tickets import ticket_data

CITY = "city-12345-rest"
CITY_KEY = "dev-city12345-push-key"
EMERGENCY_KEY = "dev-emergency-push-key"
ENFORCEMENT_SECRET = "dev-enforcement-hmac-secret"
CITY_TICKETS = load_fixtures(CITY)
ENFORCEMENT_RECORDS = load_fixtures("enforcement-case")


class _NoIntake:
    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes,
                     content_type: str) -> IntakeOutcomeView:
        raise AssertionError("a refused push never reaches intake")


NO_INTAKE = _NoIntake()


def push(gw: GatewayUnderTest, adapter_id: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(gw.inbound(adapter_id), content=body,
                      headers={"Content-Type": "application/json; charset=utf-8", **headers}, trust_env=False)


def push_city(gw: GatewayUnderTest, payload: object, key: str = CITY_KEY) -> httpx.Response:
    return push(gw, CITY, encode_json(payload), {"X-Api-Key": key})


def fresh(name: str) -> dict[str, object]:
    """A seed ticket of the city hotline under a new number: a new ticket, whatever other tests pushed."""
    return with_fresh_number(CITY_TICKETS[name], ("hotlineNo",))


# -- outcomes ---------------------------------------------------------------------------------------
def test_a_mappable_ticket_is_stored_and_answered_202_with_its_ticket_id(gateway: GatewayUnderTest) -> None:
    payload = fresh("01-food-complaint")
    response = push_city(gateway, payload)

    assert response.status_code == 202
    ticket_id = response.json()["ticket_id"]
    ticket = gateway.run(gateway.store.get_ticket(ticket_id))
    assert ticket is not None
    assert ticket.source.adapter_id == CITY
    assert ticket.source.source_ticket_no == payload["hotlineNo"]


def test_the_raw_payload_is_kept_byte_for_byte_with_the_ticket(gateway: GatewayUnderTest) -> None:
    body = encode_json(fresh("01-food-complaint"))
    response = push(gateway, CITY, body, {"X-Api-Key": CITY_KEY})

    raw = gateway.run(gateway.store.get_raw_payload(response.json()["ticket_id"]))
    assert raw is not None
    assert raw[0] == body


def test_a_repeat_push_answers_200_with_the_same_ticket_id(gateway: GatewayUnderTest) -> None:
    payload = fresh("01-food-complaint")
    first = push_city(gateway, payload)
    second = push_city(gateway, payload)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"ticket_id": first.json()["ticket_id"], "repeat": True}


def test_an_unmappable_ticket_answers_422_with_field_errors_and_is_kept_in_quarantine(
        gateway: GatewayUnderTest) -> None:
    body = encode_json(CITY_TICKETS["06-complaint-missing-phone"])
    response = push(gateway, CITY, body, {"X-Api-Key": CITY_KEY})

    assert response.status_code == 422
    answer = response.json()
    assert {"field": "complainant.phone", "rule": "complaint_requires"}.items() <= answer["errors"][0].items()
    assert set(answer["errors"][0]) >= {"field", "rule", "message", "source_path"}
    kept = gateway.run(gateway.store.get_quarantined(answer["quarantine_id"]))
    assert kept is not None
    assert kept.body == body
    assert kept.adapter_id == CITY


def test_a_ticket_for_another_authority_is_returned_with_200_and_its_reason(gateway: GatewayUnderTest) -> None:
    response = push_city(gateway, CITY_TICKETS["04-help-request-returned"])

    assert response.status_code == 200
    answer = response.json()
    assert answer["returned"] is True
    assert answer["reason_code"] == "1"
    assert "求助" in answer["reason"]
    assert gateway.run(gateway.store.get_quarantined(answer["quarantine_id"])) is not None


def test_a_gbk_body_is_read_in_the_charset_it_declares(gateway: GatewayUnderTest) -> None:
    body = json.dumps(fresh("03-enquiry-minimal"), ensure_ascii=False).encode("gbk")
    response = push(gateway, CITY, body, {"X-Api-Key": CITY_KEY, "Content-Type": "application/json; charset=GBK"})

    assert response.status_code == 202
    ticket = gateway.run(gateway.store.get_ticket(response.json()["ticket_id"]))
    assert ticket is not None
    assert CITY_TICKETS["03-enquiry-minimal"]["appealContent"][:10] in ticket.registration.content


# -- credentials ------------------------------------------------------------------------------------
def test_a_push_without_credentials_is_refused_401(gateway: GatewayUnderTest) -> None:
    response = push(gateway, CITY, encode_json(CITY_TICKETS["01-food-complaint"]), {})

    assert response.status_code == 401
    assert "X-Api-Key" in response.json()["message"]


def test_a_wrong_api_key_is_refused_401(gateway: GatewayUnderTest) -> None:
    response = push_city(gateway, CITY_TICKETS["01-food-complaint"], key="not-the-key")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_another_adapters_valid_key_is_refused_403(gateway: GatewayUnderTest) -> None:
    response = push_city(gateway, CITY_TICKETS["01-food-complaint"], key=EMERGENCY_KEY)

    assert response.status_code == 403
    assert CITY in response.json()["message"]


def test_an_api_key_configured_as_its_sha256_digest_is_accepted(dev_credentials: dict[str, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setenv("PARTNER_CITY12345_API_KEY", "sha256:" + hashlib.sha256(CITY_KEY.encode()).hexdigest())
    with serve_gateway(tmp_path) as gw:
        assert push_city(gw, fresh("01-food-complaint")).status_code == 202


def test_a_body_signed_with_the_adapters_hmac_secret_is_accepted(gateway: GatewayUnderTest) -> None:
    body = encode_json(with_fresh_number(ENFORCEMENT_RECORDS["01-clue-transfer-food"], ("record_no",)))
    response = push(gateway, "enforcement-case", body, hmac_headers(ENFORCEMENT_SECRET, body))

    assert response.status_code == 202


def test_a_signature_that_does_not_match_the_body_is_refused_401(gateway: GatewayUnderTest) -> None:
    body = encode_json(ENFORCEMENT_RECORDS["01-clue-transfer-food"])
    headers = hmac_headers(ENFORCEMENT_SECRET, body)
    tampered = body.replace("牛油".encode(), "猪油".encode())
    response = push(gateway, "enforcement-case", tampered, headers)

    assert response.status_code == 401
    assert "X-Signature" in response.json()["message"]


def test_a_signature_older_than_five_minutes_is_refused_401(gateway: GatewayUnderTest) -> None:
    body = encode_json(ENFORCEMENT_RECORDS["01-clue-transfer-food"])
    response = push(gateway, "enforcement-case", body,
                    hmac_headers(ENFORCEMENT_SECRET, body, timestamp=int(time.time()) - 301))

    assert response.status_code == 401
    assert "tolerance is 300 s" in response.json()["message_en"] and "允许相差 300 秒" in response.json()["message"]


def test_a_signature_without_its_timestamp_is_refused_401(gateway: GatewayUnderTest) -> None:
    body = encode_json(ENFORCEMENT_RECORDS["01-clue-transfer-food"])
    headers = hmac_headers(ENFORCEMENT_SECRET, body)
    del headers["X-Timestamp"]

    assert push(gateway, "enforcement-case", body, headers).status_code == 401


def test_a_push_adapter_whose_credential_variable_is_unset_stops_a_strict_start(
        dev_credentials: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTNER_EMERGENCY_API_KEY")
    configs = load_adapters(copy_adapter_dir(tmp_path / "adapters", "emergency-command"))

    with pytest.raises(MissingCredential, match="emergency-command: environment variable PARTNER_EMERGENCY_API_KEY"):
        InboundContext.build(configs, intake=NO_INTAKE, max_body_bytes=4096)


def test_a_push_adapter_whose_credential_variable_is_unset_answers_503_in_a_lenient_start(
        dev_credentials: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARTNER_EMERGENCY_API_KEY")
    configs = load_adapters(copy_adapter_dir(tmp_path / "adapters", "emergency-command"))
    app = FastAPI()
    app.state.inbound = InboundContext.build(configs, intake=NO_INTAKE, max_body_bytes=4096, strict=False)
    app.include_router(inbound_router())

    with serve_in_thread(app, name="lenient-gateway") as url:
        response = httpx.post(f"{url}/api/v1/inbound/emergency-command/tickets", json={},
                              headers={"X-Api-Key": EMERGENCY_KEY}, trust_env=False)

    assert response.status_code == 503
    assert response.json()["error"] == "adapter_not_configured"
    assert response.headers["Retry-After"] == "300"  # docs/integrators.md: retry later (Retry-After)


def test_the_fast_path_answers_pushes_as_the_route_does_and_leaves_the_rest_to_it(
        dev_credentials: dict[str, str], tmp_path: Path) -> None:
    """The gateway answers pushes in InboundFastPath, past FastAPI's routing; the FastAPI route documents the
    push, answers it the same way where the fast path is not installed, and takes every other request."""
    configs = load_adapters(copy_adapter_dir(tmp_path / "adapters", CITY))
    routed: list[str] = []

    def app_with(fast: bool) -> FastAPI:
        app = FastAPI()
        app.state.inbound = InboundContext.build(configs, intake=NO_INTAKE, max_body_bytes=4096, strict=False)

        async def resolve(request: Request) -> InboundContext:
            routed.append(request.method)
            return await from_app_state(request)

        app.include_router(inbound_router(resolve))
        if fast:
            app.add_middleware(PushFastPath, routes=[INBOUND_PUSH])
        return app

    answers = {}
    for fast in (True, False):
        with serve_in_thread(app_with(fast), name=f"inbound-fast-{fast}") as url:
            target = f"{url}/api/v1/inbound/{CITY}/tickets"
            with httpx.Client(trust_env=False) as client:
                answers[fast] = [(r.status_code, r.json()) for r in (
                    client.post(target, content=b"[1]", headers={"X-Api-Key": CITY_KEY}),
                    client.post(target, content=b"{}", headers={"X-Api-Key": "wrong"}),
                    client.post(f"{url}/api/v1/inbound/nobody/tickets", content=b"{}"),
                )]
                if fast:
                    assert routed == []  # no push went through FastAPI's route
                    assert client.get(target).status_code == 405  # the route's: only POST is a push
                    assert routed == []
    assert answers[True] == answers[False]
    assert [status for status, _ in answers[True]] == [400, 401, 404]
    assert routed == ["POST", "POST", "POST"]


# -- the request itself -----------------------------------------------------------------------------
def test_an_unknown_adapter_answers_404(gateway: GatewayUnderTest) -> None:
    response = push(gateway, "no-such-adapter", b"{}", {"X-Api-Key": CITY_KEY})

    assert response.status_code == 404
    assert "no-such-adapter" in response.json()["message"]


def test_an_adapter_that_is_polled_takes_no_pushes_404(gateway: GatewayUnderTest) -> None:
    assert push(gateway, "legacy-registration", b"{}", {"X-Api-Key": CITY_KEY}).status_code == 404


def test_a_body_declared_larger_than_the_limit_is_refused_413_before_it_is_read(gateway: GatewayUnderTest) -> None:
    body = b'{"appealContent": "' + b"x" * (64 * 1024) + b'"}'
    response = push(gateway, CITY, body, {"X-Api-Key": CITY_KEY})

    assert response.status_code == 413
    assert "limit is 65536 bytes" in response.json()["message_en"]


def test_a_chunked_body_over_the_limit_is_refused_413_while_it_is_read(gateway: GatewayUnderTest) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"appealContent": "'
        for _ in range(20):
            yield b"y" * 4096
        yield b'"}'

    response = httpx.post(gateway.inbound(CITY), content=chunks(), trust_env=False,
                          headers={"X-Api-Key": CITY_KEY, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_body_that_is_not_json_answers_400_naming_the_problem(gateway: GatewayUnderTest) -> None:
    response = push(gateway, CITY, b'{"hotlineNo": "KL1", ', {"X-Api-Key": CITY_KEY})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert "line 1 column" in response.json()["message"]


def test_a_json_array_answers_400(gateway: GatewayUnderTest) -> None:
    response = push(gateway, CITY, b"[1, 2]", {"X-Api-Key": CITY_KEY})

    assert response.status_code == 400
    assert "JSON object" in response.json()["message_en"] and "JSON 对象" in response.json()["message"]


def test_a_body_that_is_not_json_by_its_content_type_answers_415(gateway: GatewayUnderTest) -> None:
    response = push(gateway, CITY, b"hotlineNo=1", {"X-Api-Key": CITY_KEY, "Content-Type": "text/plain"})

    assert response.status_code == 415


# -- canonical and brand-new adapters ---------------------------------------------------------------
def test_the_canonical_adapter_takes_a_ticket_in_the_national_standard(gateway: GatewayUnderTest) -> None:
    payload = ticket_data("complaint", no=f"NAT-{time.time_ns()}")
    payload["source"].update(source_system="canonical", adapter_id="canonical")
    response = push(gateway, "canonical", encode_json(payload), {"X-Api-Key": "dev-canonical-push-key"})

    assert response.status_code == 202
    ticket = gateway.run(gateway.store.get_ticket(response.json()["ticket_id"]))
    assert ticket is not None
    assert ticket.registration.content == payload["registration"]["content"]


def test_the_canonical_adapter_answers_422_for_a_ticket_breaking_the_standard(gateway: GatewayUnderTest) -> None:
    payload = ticket_data("complaint", no="NAT-2024-000002")
    payload["source"].update(source_system="canonical", adapter_id="canonical")
    del payload["complainant"]["phone"]
    response = push(gateway, "canonical", encode_json(payload), {"X-Api-Key": "dev-canonical-push-key"})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["complainant.phone"]


def test_the_canonical_adapter_answers_returned_for_another_authoritys_matter(dev_credentials: dict[str, str],
                                                                             tmp_path: Path) -> None:
    payload = ticket_data("complaint", no=f"NAT-{time.time_ns()}", registration__title="路口红绿灯坏了",
                          registration__content="凯里市营盘路与韶山南路交叉口的红绿灯一直黄灯闪烁，早晚高峰车辆乱成一团。",
                          registration__request="尽快修复信号灯")
    payload["source"].update(source_system="canonical", adapter_id="canonical")
    payload.update(respondent={}, subject={})
    with serve_gateway(tmp_path / "data", jurisdiction_file=JURISDICTION_FILE) as gw:
        response = push(gw, "canonical", encode_json(payload), {"X-Api-Key": "dev-canonical-push-key"})

        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["returned"], answer["ticket_id"], answer["reason_code"]) == (True, None, "1")
        assert "公安交通管理部门" in answer["reason"]
        kept = gw.run(gw.store.get_quarantined(answer["quarantine_id"]))
        assert kept is not None
        assert "jurisdiction:return.traffic-police" in [e.rule for e in kept.errors]


NEW_ADAPTER_YAML = """\
# 黔南州12345 (a new region's REST hotline): configuration only.
id: qiannan-12345-rest
kind: rest
partner_system: qiannan-12345
region_code: "522700"
mapping_spec: specs/qiannan-12345-rest.yaml
push: true
auth:
  api_key_env: PARTNER_QIANNAN12345_API_KEY
callback:
  url: http://127.0.0.1:9/callbacks
  secret_env: PARTNER_QIANNAN12345_CALLBACK_SECRET
"""


def test_a_new_adapter_defined_only_by_yaml_and_a_mapping_spec_receives_a_ticket(
        dev_credentials: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "adapters"
    specs = config_dir / "specs"
    specs.mkdir(parents=True)
    (config_dir / "qiannan-12345-rest.yaml").write_text(NEW_ADAPTER_YAML, encoding="utf-8")
    spec = (SPECS_DIR / "city-12345-rest.yaml").read_text(encoding="utf-8")
    spec = spec.replace("adapter_id: city-12345-rest", "adapter_id: qiannan-12345-rest")
    spec = spec.replace("source_system: city-12345", "source_system: qiannan-12345")
    (specs / "qiannan-12345-rest.yaml").write_text(spec, encoding="utf-8")
    shutil.copytree(SPECS_DIR / "crosswalks" / "city-12345", specs / "crosswalks" / "qiannan-12345")
    monkeypatch.setenv("PARTNER_QIANNAN12345_API_KEY", "qiannan-key")
    payload = dict(CITY_TICKETS["01-food-complaint"], hotlineNo="QN12345-2024-0001")

    with serve_gateway(tmp_path / "data", config_dir) as gw:
        response = push(gw, "qiannan-12345-rest", encode_json(payload), {"X-Api-Key": "qiannan-key"})
        assert response.status_code == 202, response.text
        ticket = gw.run(gw.store.get_ticket(response.json()["ticket_id"]))

    assert ticket is not None
    assert ticket.source.adapter_id == "qiannan-12345-rest"
    assert ticket.source.source_system == "qiannan-12345"
