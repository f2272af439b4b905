"""Each ops role's limits: viewer reads (masked), operator also replays and re-maps, admin also reloads and audits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.secrets import generated_secret_path
from contracts.yamldoc import YamlFileError
from gateway.ops.access import Authenticator, Role, hash_token, parse_token_hash
from gateway.ops.throttle import MAX_FAILURES, FailureThrottle
from tests.ops.ops_support import TOKENS, OpsGateway, city_complaint


async def test_a_request_without_a_token_is_refused_naming_the_header(sqlite_gw: OpsGateway) -> None:
    response = await sqlite_gw.get("/api/v1/tickets", role=None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"
    assert response.json()["field"] == "Authorization"
    assert response.json()["message"] == "请出示运维令牌：Authorization: Bearer <令牌>"
    assert response.json()["message_en"] == "present an ops token: Authorization: Bearer <token>"


async def test_refusals_speak_chinese_to_the_operator_and_english_beside_it(sqlite_gw: OpsGateway) -> None:
    missing = await sqlite_gw.get("/api/v1/tickets/01J0000000000000000000000Z", role="viewer")
    assert missing.status_code == 404
    assert missing.json()["message"] == "找不到工单 01J0000000000000000000000Z"
    assert missing.json()["message_en"] == "no ticket 01J0000000000000000000000Z"
    forbidden = await sqlite_gw.post("/api/v1/admin/reload", "viewer")
    assert forbidden.status_code == 403
    assert "需要 admin 角色" in forbidden.json()["message"] and "needs the admin role" in forbidden.json()["message_en"]


async def test_an_unknown_token_is_refused(sqlite_gw: OpsGateway) -> None:
    response = await sqlite_gw.client.get("/api/v1/tickets", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


async def test_a_viewer_reads_tickets_deliveries_and_quarantine(sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-ROLE-1"))
    for path in ("/api/v1/tickets", "/api/v1/deliveries", "/api/v1/quarantine", "/api/v1/ops/overview"):
        assert (await sqlite_gw.get(path, role="viewer")).status_code == 200, path


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/api/v1/deliveries/replay", {"delivery_ids": ["01J0000000000000000000000A"]}),
    ("post", "/api/v1/quarantine/01J0000000000000000000000Q/remap", None),
    ("post", "/api/v1/admin/reload", None),
    ("get", "/api/v1/audit", None),
])
async def test_a_viewer_may_not_replay_remap_reload_or_read_the_audit_log(sqlite_gw: OpsGateway, method: str,
                                                                           path: str, body: object) -> None:
    headers = sqlite_gw.auth("viewer")
    response = await (sqlite_gw.client.post(path, json=body, headers=headers) if method == "post"
                      else sqlite_gw.client.get(path, headers=headers))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "viewer" in response.json()["message"]


async def test_an_operator_replays_and_remaps_but_may_not_reload_or_read_the_audit_log(sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-ROLE-2"))
    dead = await sqlite_gw.kill_delivery()
    replay = await sqlite_gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": [dead]})
    assert replay.status_code == 200 and replay.json()["count"] == 1
    missing = await sqlite_gw.post("/api/v1/quarantine/01J0000000000000000000000Q/remap", "operator")
    assert missing.status_code == 404 and missing.json()["field"] == "quarantine_id"  # allowed, but nothing there
    assert (await sqlite_gw.post("/api/v1/admin/reload", "operator")).status_code == 403
    assert (await sqlite_gw.get("/api/v1/audit", "operator")).status_code == 403


async def test_an_admin_reloads_configuration_and_reads_the_audit_log(sqlite_gw: OpsGateway) -> None:
    reload = await sqlite_gw.post("/api/v1/admin/reload", "admin")
    assert reload.status_code == 200
    assert reload.json()["restart_required"] == []
    assert "city-12345-rest" in reload.json()["adapters"]
    audit = await sqlite_gw.get("/api/v1/audit", "admin")
    assert [e["action"] for e in audit.json()] == ["config.reload"]
    assert audit.json()[0]["actor"] == "ops-admin"


async def test_the_api_takes_the_dashboard_cookie_for_reading_but_never_for_a_change(sqlite_gw: OpsGateway) -> None:
    sqlite_gw.client.cookies.set("hig_ops_token", TOKENS["admin"])
    try:
        assert (await sqlite_gw.client.get("/api/v1/tickets")).status_code == 200
        changed = await sqlite_gw.client.post("/api/v1/deliveries/replay",
                                              json={"delivery_ids": ["01J0000000000000000000000A"]})
        assert changed.status_code == 401
        assert (await sqlite_gw.client.post("/api/v1/admin/reload")).status_code == 401
    finally:
        sqlite_gw.client.cookies.clear()


# -- tokens and the users file ---------------------------------------------------------------------------

def test_a_token_hash_is_salted_and_verifies_only_its_token() -> None:
    first, second = hash_token("s3cret-token"), hash_token("s3cret-token")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$16384$8$1$")
    assert parse_token_hash(first).verify("s3cret-token")
    assert not parse_token_hash(first).verify("s3cret-tokem")


def test_users_with_hashed_tokens_and_environment_tokens_authenticate(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_TOKEN_LI", "li-token-1,li-token-2")
    users = tmp_path / "ops-users.yaml"
    users.write_text(
        "users:\n"
        f"  - {{id: zhang, name: 张三, role: operator, token_hash: '{hash_token('zhang-token')}'}}\n"
        f"  - {{id: wang, role: viewer, token_hash: 'sha256:{hashlib.sha256(b'wang-token').hexdigest()}'}}\n"
        "  - {id: li, role: admin, token_env: OPS_TOKEN_LI}\n", encoding="utf-8")
    auth = Authenticator.from_file(users, tmp_path / "data")
    zhang = auth.authenticate("zhang-token")
    assert zhang is not None and (zhang.id, zhang.role, zhang.display) == ("zhang", Role.OPERATOR, "张三")
    assert auth.authenticate("wang-token").role is Role.VIEWER  # type: ignore[union-attr]
    assert auth.authenticate("li-token-2").id == "li"  # type: ignore[union-attr]  # rotation: both valid
    assert auth.authenticate("zhang-token ") is None
    assert auth.authenticate("") is None


def test_an_unset_token_variable_gets_a_development_token_under_the_data_dir(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_TOKEN_DEV", raising=False)
    users = tmp_path / "ops-users.yaml"
    users.write_text("users:\n  - {id: dev, role: admin, token_env: OPS_TOKEN_DEV}\n", encoding="utf-8")
    auth = Authenticator.from_file(users, tmp_path / "data")
    path = generated_secret_path(tmp_path / "data", "ops-token-dev")
    assert path.stat().st_mode & 0o077 == 0
    assert auth.authenticate(path.read_text(encoding="utf-8").strip()).id == "dev"  # type: ignore[union-attr]


def test_a_malformed_users_file_names_the_file_line_and_key(tmp_path: Path) -> None:
    users = tmp_path / "ops-users.yaml"
    users.write_text("users:\n  - id: zhang\n    role: operator\n    token_hash: md5-abcdef0123\n", encoding="utf-8")
    with pytest.raises(YamlFileError) as err:
        Authenticator.from_file(users, tmp_path / "data")
    message = str(err.value)
    assert f"{users}:4:" in message and "token_hash" in message and "scrypt" in message


def test_the_demo_users_file_keeps_no_token(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "config" / "ops-users.yaml").read_text(encoding="utf-8")
    assert "token_env: HIG_OPS_TOKEN_ADMIN" in text
    assert not any(token in text for token in TOKENS.values())


async def test_too_many_failed_sign_ins_from_one_address_are_throttled(sqlite_gw: OpsGateway) -> None:
    assert (await sqlite_gw.get("/api/v1/tickets", role="operator")).status_code == 200  # recognised from now on
    for n in range(MAX_FAILURES):
        guess = await sqlite_gw.client.get("/api/v1/tickets", headers={"Authorization": f"Bearer guess-{n}"})
        assert guess.status_code == 401
    throttled = await sqlite_gw.client.get("/api/v1/tickets", headers={"Authorization": "Bearer guess-again"})
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_failed_sign_ins"
    assert 1 <= int(throttled.headers["retry-after"]) <= 300
    # The dashboard's sign-in form says so too; an unknown token, even a valid one, is not checked meanwhile.
    form = await sqlite_gw.client.post("/ops/login", data={"token": TOKENS["viewer"], "next": "/ops"})
    assert form.status_code == 429 and "登录失败次数过多" in form.text and "retry-after" in form.headers
    # A token already seen to be valid costs no hash check and is never throttled.
    assert (await sqlite_gw.get("/api/v1/tickets", role="operator")).status_code == 200


def test_the_failure_throttle_counts_within_its_window_and_forgets_after() -> None:
    now = [1000.0]
    throttle = FailureThrottle(max_failures=3, window=60.0, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("10.0.0.9")
    assert throttle.retry_after("10.0.0.9") == 0
    throttle.failed("10.0.0.9")
    assert throttle.retry_after("10.0.0.9") == 60 and throttle.retry_after("10.0.0.10") == 0
    now[0] += 30.5
    assert throttle.retry_after("10.0.0.9") == 30
    now[0] += 30
    assert throttle.retry_after("10.0.0.9") == 0  # the first failure left the window
    throttle.failed("10.0.0.9")
    throttle.succeeded("10.0.0.9")  # a success forgets the address's failures
    assert throttle.retry_after("10.0.0.9") == 0
