"""The partner simulators: real servers on loopback, each startable alone, speaking each partner's own shape."""

from __future__ import annotations

import importlib
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from simulators import city12345, credit, emergency, enforcement, legacy
from simulators.peer import encode_json, fresh_number
from tests.adapters.adapter_support import REPO, GatewayUnderTest

SIMULATORS = ["city12345", "legacy", "enforcement", "credit", "emergency"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_fresh_number_is_never_handed_out_twice_in_a_process() -> None:
    # Fifty draws of two digits from one seed repeat a number unless the draw refuses the ones already given.
    rng = random.Random(12345)
    numbers = [fresh_number("GZ12345-20240330-00", rng) for _ in range(50)]

    assert len(set(numbers)) == 50
    assert all(number.startswith("GZ12345-20240330-") and len(number) == 19 for number in numbers)


@pytest.mark.parametrize("name", SIMULATORS)
def test_each_simulator_runs_in_a_thread_and_documents_its_api(name: str) -> None:
    module = importlib.import_module(f"simulators.{name}")
    running: AbstractContextManager[Any] = module.run_in_thread()
    with running as sim:
        response = httpx.get(f"{sim.url}/openapi.json", trust_env=False)

    assert response.status_code == 200
    assert "/callbacks" in response.json()["paths"]


@pytest.mark.parametrize("name", SIMULATORS)
def test_each_simulator_starts_alone_from_the_command_line(name: str) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", f"simulators.{name}", "--port", str(port)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first_line = json.loads(process.stdout.readline() if process.stdout else b"{}")
        answer = httpx.get(f"http://127.0.0.1:{port}/sim/callbacks", trust_env=False)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert first_line["url"] == f"http://127.0.0.1:{port}"
    assert answer.json() == {"callbacks": [], "refused": []}


def test_a_callback_without_a_valid_signature_is_refused_and_recorded_as_refused() -> None:
    with city12345.run_in_thread() as sim:
        response = httpx.post(sim.callback_url, content=b'{"handleStatus": "2"}', trust_env=False,
                              headers={"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                                       "webhook-signature": "v1,AAAA"})

    assert response.status_code == 401
    assert sim.callbacks.received() == []
    assert len(sim.callbacks.refused()) == 1


# -- pushing partners ---------------------------------------------------------------------------------
def test_the_city_hotline_pushes_its_seed_tickets_with_its_api_key(gateway: GatewayUnderTest) -> None:
    with city12345.run_in_thread(gateway_url=gateway.url) as sim:
        result = sim.push_fixture("02-report-with-attachments", fresh=True)

    assert result.status == 202
    assert result.ticket_id is not None
    assert sim.pusher.pushes() == [result]


def test_a_push_can_be_ordered_over_http_from_a_running_simulator(gateway: GatewayUnderTest) -> None:
    with emergency.run_in_thread(gateway_url=gateway.url) as sim:
        response = httpx.post(f"{sim.url}/sim/push", json={"fixture": "01-level-i-food-poisoning", "fresh": True},
                              trust_env=False, timeout=30)

    assert response.json()["status"] == 202


def test_the_enforcement_system_signs_its_pushes(gateway: GatewayUnderTest) -> None:
    with enforcement.run_in_thread(gateway_url=gateway.url) as sim:
        result = sim.push_fixture("02-case-filed-with-penalty", fresh=True)

    assert result.status == 202, result.body


def test_the_enforcement_system_reports_the_outcome_of_a_received_case_in_its_own_shape(
        gateway: GatewayUnderTest) -> None:
    ticket = {"national_registration_no": "1252260020240320000517", "source": {"source_ticket_no": "KL-1"},
              "respondent": {"name": "凯里市老街坊食品加工厂", "uscc": "91522601MA6DL4KQ33",
                             "operating_region_code": "522601"},
              "routing": {"handler_org_code": "522601000", "handler_org_name": "凯里市市场监督管理局"},
              "registration": {"content": "举报该厂使用来源不明的牛油生产火锅底料。"}}
    with enforcement.run_in_thread(gateway_url=gateway.url) as sim:
        answer = httpx.post(f"{sim.url}/api/cases", json={"rule": "诉转案", "ticket": ticket},
                            headers={"Idempotency-Key": "k-1"}, trust_env=False).json()
        case = sim.cases.find(answer["case_no"])
        assert case is not None
        record = sim.outcome_record(case, decision="立案", penalty="50,000.00元", opinion="没收违法所得并处罚款")
        pushed = sim.report_outcome(case.number, decision="立案", penalty="50,000.00元")

    assert pushed.status == 202, pushed.body
    assert record["record_type"] == "case"
    assert record["record_no"] == answer["case_no"]
    assert record["outcome"]["decision"] == "立案"
    assert record["informant"] == {"anonymous": True}


@pytest.mark.parametrize(("module", "path"), [(enforcement, "/api/cases"), (credit, "/api/credit/cases"),
                                              (emergency, "/api/tickets")])
def test_a_receiving_partner_gives_a_retried_delivery_the_same_number(module: Any, path: str) -> None:
    with module.run_in_thread() as sim:
        url = f"{sim.url}{path}"
        first = httpx.post(url, json={"ticket": {}}, headers={"Idempotency-Key": "same"}, trust_env=False)
        again = httpx.post(url, json={"ticket": {}}, headers={"Idempotency-Key": "same"}, trust_env=False)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() | {"repeat": True} == again.json()


# -- the credit system --------------------------------------------------------------------------------
@pytest.fixture
def credit_system() -> Iterator[credit.CreditSupervision]:
    with credit.run_in_thread() as sim:
        yield sim


def test_the_credit_look_up_reports_both_lists_for_a_listed_business(credit_system: credit.CreditSupervision) -> None:
    answer = httpx.get(f"{credit_system.url}/api/credit/91522601MA6DL4KQ33", trust_env=False).json()

    assert answer["flags"] == ["经营异常", "严重违法失信"]
    assert answer["serious_violation"] is True


def test_the_credit_look_up_of_an_unlisted_business_has_no_flags(credit_system: credit.CreditSupervision) -> None:
    answer = httpx.get(f"{credit_system.url}/api/credit/91350100M000100Y43", trust_env=False).json()

    assert (answer["found"], answer["flags"]) == (False, [])


def test_the_credit_system_can_be_made_slow(credit_system: credit.CreditSupervision) -> None:
    httpx.post(f"{credit_system.url}/sim/faults", json={"latency_seconds": 0.3}, trust_env=False)
    started = time.monotonic()
    httpx.get(f"{credit_system.url}/api/credit/91522601MA6DL4KQ33", trust_env=False)

    assert time.monotonic() - started >= 0.3


def test_the_credit_system_can_be_made_unavailable(credit_system: credit.CreditSupervision) -> None:
    httpx.post(f"{credit_system.url}/sim/faults", json={"down": True, "status": 502}, trust_env=False)

    assert httpx.get(f"{credit_system.url}/api/credit/91522601MA6DL4KQ33", trust_env=False).status_code == 502


# -- the legacy system -------------------------------------------------------------------------------
def test_the_legacy_system_serves_records_only_to_the_holder_of_its_key() -> None:
    with legacy.run_in_thread() as sim:
        refused = httpx.get(f"{sim.url}/api/records", trust_env=False)
        served = httpx.get(f"{sim.url}/api/records", params={"since": "2", "limit": "2"},
                           headers={"X-Api-Key": sim.api_key}, trust_env=False).json()

    assert refused.status_code == 401
    assert [r["djbh"] for r in served["data"]["records"]] == [r.djbh for r in sim.records()[2:4]]
    assert served["data"]["next"] == "4"
    assert served["data"]["more"] is True


def test_the_legacy_system_records_acks_by_registration_number() -> None:
    with legacy.run_in_thread() as sim:
        number = sim.records()[0].djbh
        answer = httpx.post(f"{sim.url}/api/records/ack", content=encode_json({"djbh": [number, "nope"]}),
                            headers={"X-Api-Key": sim.api_key}, trust_env=False).json()

    assert answer["data"] == {"acked": 1, "unknown": ["nope"]}
    assert sim.acked() == [number]


def test_a_polled_simulator_queues_a_seed_record_and_refuses_an_empty_order() -> None:
    from simulators.credit.app import run_in_thread as credit_system
    from simulators.legacy.app import run_in_thread as legacy_system

    with credit_system() as clues, legacy_system() as registry:
        before = len(registry.records())
        seed = next(iter(registry.fixtures))
        queued = httpx.post(f"{registry.url}/sim/records", json={"fixture": seed, "fresh": True})
        assert queued.status_code == 200
        assert len(registry.records()) == before + 1
        assert "seq" in queued.json()
        refused = httpx.post(f"{clues.url}/sim/clues", json={})
        assert refused.status_code == 400
        assert "give a clue" in refused.json()["message"]
