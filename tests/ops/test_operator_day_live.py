"""Retry now and reload through the gateway as it runs for real (`python main.py -c …` in its own process): a retrying
delivery goes at once when the CLI (in a subprocess), the API or the dashboard says so, audited, and a second ask is
explained; reload names a change that is not running on every reload until a restart, and nothing after it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.e2e_support import wait_for
from tests.hardening.live_gateway import CITY, REPO, GatewayFiles, running, serve, write_config
from tests.ops.ops_support import Receiver, city_complaint, receiver

# An hour between attempts: without retry now a delivery that failed once would not go again during the test.
HOUR_WAIT = {"national": {"retry": {"backoff": "exponential", "initial_delay": "1h", "max_delay": "2h"}}}


@contextmanager
def _client(files: GatewayFiles) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=files.url, timeout=30, trust_env=False) as client:
        yield client


def _bearer(files: GatewayFiles, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {files.ops_tokens[role]}"}


def _cli(files: GatewayFiles, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args, "-c", str(files.gateway_yaml)], cwd=REPO,
                          env=files.env, capture_output=True, text=True, timeout=300)


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def _national(client: httpx.Client, files: GatewayFiles, ticket_id: str) -> dict[str, Any] | None:
    """The ticket's national delivery as the live API lists it (None before it exists)."""
    found = client.get("/api/v1/deliveries", params={"ticket_id": ticket_id, "destination": "national"},
                       headers=_bearer(files, "viewer"))
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()
    return rows[0] if rows else None


def _in_state(client: httpx.Client, files: GatewayFiles, ticket_id: str, state: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = _national(client, files, ticket_id)
        return row if row is not None and row["state"] == state else None

    found: dict[str, Any] = wait_for(f"{ticket_id}'s national delivery {state}", reached, 120, 0.2,
                                     explain=lambda: str(_national(client, files, ticket_id)))
    return found


def _retrying(client: httpx.Client, files: GatewayFiles, peer: Receiver, no: str) -> tuple[str, str]:
    """A complaint pushed over HTTP whose national forward was refused (503) once and now waits an hour."""
    pushed = client.post(f"/api/v1/inbound/{CITY}/tickets", json=city_complaint(no),
                         headers={"X-Api-Key": files.credentials["PARTNER_CITY12345_API_KEY"]})
    assert pushed.status_code in (200, 201, 202), pushed.text
    ticket_id: str = pushed.json()["ticket_id"]
    row = _in_state(client, files, ticket_id, "retrying")
    assert row["attempts"] == 1  # one try; the next is an hour away
    return ticket_id, str(row["delivery_id"])


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no form with a csrf field on the page"
    return match.group(1)


def test_retry_now_from_the_cli_the_api_and_the_dashboard_of_a_running_gateway(tmp_path: Path) -> None:
    with receiver() as peer:
        peer.accept, peer.refuse_status = False, 503
        files = write_config(tmp_path, destinations={"national": {"url": f"{peer.url}/national",
                                                                  **HOUR_WAIT["national"]}})
        with running(serve(files)), _client(files) as client:
            by_cli, by_cli_delivery = _retrying(client, files, peer, "KL-LIVE-RETRY-1")
            by_filter, _ = _retrying(client, files, peer, "KL-LIVE-RETRY-2")
            peer.accept = True  # the partner fixed its side

            # The CLI, by id, beside the running gateway: its workers send the delivery at once.
            assert _summary(_cli(files, "deliveries", "replay", "--id", by_cli_delivery))["replayed"] == 1
            _in_state(client, files, by_cli, "delivered")
            again = _summary(_cli(files, "deliveries", "replay", "--id", by_cli_delivery))
            assert again["replayed"] == 0
            assert again["not_replayed"] == {by_cli_delivery: {"state": "delivered", "reason": "delivered",
                                                               "message": "已投递成功，无需重新投递"}}

            # The CLI by filter: only retrying deliveries of the lane, not the delivered one.
            dry = _summary(_cli(files, "deliveries", "replay", "--retrying", "--destination", "national", "--dry-run"))
            assert (dry["matched"], dry["would_replay"]) == (1, 1)
            assert _summary(_cli(files, "deliveries", "replay", "--retrying", "--destination", "national"))[
                "replayed"] == 1
            _in_state(client, files, by_filter, "delivered")

            # The API, by id, over HTTP.
            peer.accept = False
            by_api, by_api_delivery = _retrying(client, files, peer, "KL-LIVE-RETRY-3")
            peer.accept = True
            answer = client.post("/api/v1/deliveries/replay", json={"delivery_ids": [by_api_delivery]},
                                 headers=_bearer(files, "operator"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["delivery_ids"] == [by_api_delivery] and answer.json()["not_replayed"] == []
            _in_state(client, files, by_api, "delivered")

            # The dashboard: the lane's retry-now button, as an operator signed in over HTTP.
            peer.accept = False
            by_board, _ = _retrying(client, files, peer, "KL-LIVE-RETRY-4")
            peer.accept = True
            login = client.post("/ops/login", data={"token": files.ops_tokens["operator"], "next": "/ops"})
            assert login.status_code == 303, login.text
            board = client.get("/ops")
            assert 'id="retry-now-national"' in board.text
            done = client.post("/ops/destinations/national/retry-now", data={"csrf": _csrf(board.text)})
            assert (done.status_code, done.headers["location"]) == (303, "/ops?msg=retried_now")
            _in_state(client, files, by_board, "delivered")

            audit = client.get("/api/v1/audit", params={"action": "replay"}, headers=_bearer(files, "admin"))
            assert audit.status_code == 200, audit.text
            entries = audit.json()
            by_ticket = {tuple(e["ticket_ids"]): e for e in entries if e["ticket_ids"]}
            assert by_ticket[(by_cli,)]["actor"].startswith("cli:")
            assert by_ticket[(by_filter,)]["actor"].startswith("cli:")
            assert by_ticket[(by_api,)]["role"] == "operator" and by_ticket[(by_board,)]["role"] == "operator"
            assert {by_cli_delivery: "delivered"} in [e["detail"].get("not_replayed") for e in entries]


def test_reload_names_a_change_until_the_gateway_restarts_and_the_dashboard_shows_it(tmp_path: Path) -> None:
    files = write_config(tmp_path, workers=False)
    adapter = files.config_dir / "adapters" / f"{CITY}.yaml"
    doc = yaml.safe_load(adapter.read_text(encoding="utf-8"))
    gateway = serve(files)
    with running(gateway), _client(files) as client:
        doc["callback"]["retry"]["max_attempts"] += 1  # a transport setting: only a restart applies it
        adapter.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        for _ in range(2):  # the second reload still compares with what runs, not with the first reload
            reloaded = client.post("/api/v1/admin/reload", headers=_bearer(files, "admin"))
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["restart_required"] == [f"adapter:{CITY}"]
        login = client.post("/ops/login", data={"token": files.ops_tokens["viewer"], "next": "/ops"})
        assert login.status_code == 303, login.text
        board = client.get("/ops").text
        assert 'id="restart-pending"' in board and "需重启网关后才生效" in board and f"adapter:{CITY}" in board
        # The demo's credentials were generated under the data folder: the dashboard says so, as the check does.
        row = re.search(rf'<tr id="adapter-{CITY}">(.*?)</tr>', board, re.S)
        assert row and 'class="credentials" data-source="generated"' in row.group(1)
        checked = subprocess.run([sys.executable, "-m", "adapters", "check", str(files.config_dir / "adapters")],
                                 cwd=REPO, env={**files.env, "HIG_DATA_DIR": str(files.data_dir)},
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stderr
        assert "  PARTNER_CITY12345_API_KEY: GENERATED for the demo" in checked.stdout
    with running(gateway), _client(files) as client:  # restarted: the changed file is what runs now
        reloaded = client.post("/api/v1/admin/reload", headers=_bearer(files, "admin"))
        assert reloaded.status_code == 200 and reloaded.json()["restart_required"] == []
        client.post("/ops/login", data={"token": files.ops_tokens["viewer"], "next": "/ops"})
        assert 'id="restart-pending"' not in client.get("/ops").text
