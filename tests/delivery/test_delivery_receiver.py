"""The test receiver itself: scripted failures, per-key records and its HTTP control API."""

from __future__ import annotations

import httpx

from simulators.receiver import Action, Receiver


def test_per_key_script_then_default(receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503, retry_after="5")])
    with httpx.Client() as client:
        first = client.post(receiver.url, content=b"{}", headers={"Idempotency-Key": "k1"})
        second = client.post(receiver.url, content=b"{}", headers={"Idempotency-Key": "k1"})
        other = client.post(receiver.url, content=b"{}", headers={"Idempotency-Key": "k2"})
    assert (first.status_code, first.headers["retry-after"]) == (503, "5")
    assert (second.status_code, other.status_code) == (200, 503)
    assert receiver.counts() == {"k1": 2, "k2": 1}
    assert [r.answered for r in receiver.requests("k1")] == [503, 200]


def test_outage_overrides_everything_until_lifted(receiver: Receiver) -> None:
    receiver.set_outage(Action(status=502))
    with httpx.Client() as client:
        assert client.post(receiver.url, headers={"Idempotency-Key": "k"}).status_code == 502
        receiver.set_outage(None)
        assert client.post(receiver.url, headers={"Idempotency-Key": "k"}).status_code == 200


def test_the_control_api_scripts_and_reports(receiver: Receiver) -> None:
    with httpx.Client(base_url=receiver.url) as client:
        client.post("_receiver/script", json={"sequence": [{"status": 429, "retry_after": "1"}]})
        assert client.post("/", headers={"Idempotency-Key": "a"}).status_code == 429
        assert client.post("/", headers={"Idempotency-Key": "a"}).status_code == 200
        stats = client.get("_receiver/stats").json()
        client.post("_receiver/reset")
        assert client.get("_receiver/stats").json()["total"] == 0
    assert stats["total"] == 2
    assert stats["keys_received_twice_or_more"] == 1
    assert stats["answered"] == {"429": 1, "200": 1}
