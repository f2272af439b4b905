"""The command line as a newcomer uses it: serve, check-config, schema export.

Each command starts `python main.py` once here; the other check-config cases call the same command line in this
process (tests/hig_command.py), where a Python start-up costs nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.hig_command import run_hig

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_config_accepts_the_demo_configuration() -> None:
    done = subprocess.run([sys.executable, "main.py", "check-config"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "522600" in done.stdout


def test_check_config_names_the_broken_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text('region:\n  code: "5226"\n  name: x\n', encoding="utf-8")
    done = run_hig("check-config", str(bad))
    assert done.returncode == 2
    assert f"{bad}:2: region.code" in done.stderr


def test_check_config_refuses_a_region_code_that_is_no_region(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text('region:\n  code: "522690"\n  name: x\n', encoding="utf-8")
    done = run_hig("check-config", str(bad))
    assert done.returncode == 2
    assert f"{bad}:2: region.code: region code 522690 is not in the current GB/T 2260 table" in done.stderr


def test_schema_export_writes_the_contract_schemas(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "main.py", "schema", "export", "--directory", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ticket.schema.json").is_file()


def test_main_py_with_no_command_serves_health_and_docs(tmp_path: Path) -> None:
    port = free_port()
    env = {"HIG_SERVER__PORT": str(port), "HIG_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
           "HIG_DEMO__SIMULATORS": "false", "HIG_POLLERS": "false"}  # the demo itself: tests/e2e/test_demo.py
    proc = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "gateway did not start in 30 s"
                time.sleep(0.2)
        assert ready.status_code == 200
        assert ready.json()["region"] == "522600"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        assert (tmp_path / "data").is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_check_config_names_a_broken_file_the_configuration_points_to(tmp_path: Path) -> None:
    import shutil

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    routing = config / "routing.yaml"
    routing.write_text(routing.read_text(encoding="utf-8").replace("status: [FILED]", "status: [FILD]"),
                       encoding="utf-8")
    done = run_hig("check-config", str(config / "gateway.yaml"))
    assert done.returncode == 2
    assert f"{routing}:" in done.stderr
    assert "rules[7].when.status[0]" in done.stderr  # enforcement-filed-report


def test_check_config_names_a_routing_rule_whose_lane_delivery_does_not_define(tmp_path: Path) -> None:
    import shutil

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    routing = config / "routing.yaml"
    text = routing.read_text(encoding="utf-8").replace("destination: enforcement", "destination: enforcment")
    routing.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    destination: enforcment") + 1
    done = run_hig("check-config", str(config / "gateway.yaml"))
    assert done.returncode == 2
    assert f"{routing}:{line}: rules[7].destination: unknown lane 'enforcment'" in done.stderr
