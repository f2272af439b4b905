"""`.ci/postgres`, the CI step that starts PostgreSQL where none answers, run for real: on a free port, where nothing
answers, it must leave a cluster answering with trust authentication and a database `test`, and leave the machine's
own cluster on 5432 as it was. The cluster it made is dropped afterwards (stopped, its data directory removed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

from tests.hardening.live_gateway import closed_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / ".ci" / "postgres"


def _clusters() -> dict[str, tuple[str, str, str, str]]:
    """pg_lsclusters by cluster name: (version, port, status, data directory)."""
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    return {f[1]: (f[0], f[2], f[3], f[5]) for f in (line.split() for line in out.splitlines())}


def _machine_cluster() -> tuple[tuple[str, str, str, str], str]:
    """The cluster on 5432 as pg_lsclusters shows it, and its pg_hba.conf."""
    [(name, row)] = [(name, row) for name, row in _clusters().items() if row[1] == "5432"]
    return row, Path(f"/etc/postgresql/{row[0]}/{name}/pg_hba.conf").read_text(encoding="utf-8")


def _ci(port: int, cluster: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HIG_CI_POSTGRES_PORT": str(port), "HIG_CI_POSTGRES_CLUSTER": cluster,
           "HIG_CI_PYTHON": sys.executable}
    return subprocess.run([str(SCRIPT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


async def _answer(port: int) -> tuple[str, int, str]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/test", timeout=10)  # no password: trust
    try:
        row = await conn.fetchrow("SELECT current_database() AS db, inet_server_port() AS port,"
                                  " current_setting('data_directory') AS data")
        return row["db"], row["port"], row["data"]
    finally:
        await conn.close()


def test_where_nothing_answers_ci_starts_a_postgres_with_trust_and_database_test_and_leaves_5432_alone() -> None:
    port, cluster = closed_port(), f"hig-ci-{uuid.uuid4().hex[:8]}"
    machine_before = _machine_cluster()
    try:
        started = _ci(port, cluster)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"cluster {cluster} on port {port}" in started.stdout
        _, cluster_port, status, data_dir = _clusters()[cluster]
        assert (cluster_port, status) == (str(port), "online")
        assert asyncio.run(_answer(port)) == ("test", port, data_dir)

        again = _ci(port, cluster)  # the normal path: it answers, nothing is made or started
        assert (again.returncode, again.stdout) == (0, f"PostgreSQL answers on 127.0.0.1:{port}\n")
    finally:
        made = _clusters().get(cluster)
        if made is not None:
            subprocess.run(["pg_dropcluster", "--stop", made[0], cluster], check=True, timeout=120)
    assert cluster not in _clusters() and not Path(data_dir).exists()
    assert _machine_cluster() == machine_before
