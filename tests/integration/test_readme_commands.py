"""The README's commands as a newcomer types them: `scripts/airflow.sh standalone`, `make bench`'s tools.

The standalone test starts the whole embedded Airflow (scheduler, dag-processor, api-server,
triggerer) with an AIRFLOW_HOME of its own, logs in through the REST API with the password
standalone generated, checks the DAGs parsed without import errors, triggers `vidrec_train`
with params through the API (not `dags test`) and waits for it to succeed, then stops it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from pipelines.cluster_profile import stop_process_group
from tests.conftest import REPO
from tests.e2e.test_day_zero import DAY, T0, VIDEOS, write_source

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds: float, what: str, proc: subprocess.Popen, log: Path):  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"standalone exited ({proc.returncode}) waiting for {what}:\n{log.read_text()[-4000:]}"
            )
        try:
            if (value := check()) is not None:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError(f"no {what} within {seconds} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def standalone(tmp_path):
    """`scripts/airflow.sh standalone` as README says, on a free port and a home of its own."""
    port, home, log = free_port(), tmp_path / "airflow", tmp_path / "standalone.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PATH"] = "/usr/bin:/bin"  # as on a fresh shell: the venv is not on it
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{port}/execution/",
        VIDREC_TASK_RETRIES="0",
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts/airflow.sh"), "standalone"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", home, proc, log
    finally:
        # SIGTERM: standalone ignored SIGINT for over a minute on every run
        stop_process_group(proc.pid, grace=15.0, reap=proc.poll)
        if proc.poll() is None:
            proc.wait(10)
        subprocess.run(["pkill", "-KILL", "-f", str(home)], check=False)  # any component that left the group


def test_airflow_standalone_runs_vidrec_train_triggered_through_the_rest_api(standalone, tmp_path, redis_url):
    base, home, proc, log = standalone
    api = httpx.Client(base_url=base, timeout=30)
    wait_for(lambda: api.get("/api/v2/monitor/health").status_code == 200 or None, 300, "api-server", proc, log)
    password_file = home / "simple_auth_manager_passwords.json.generated"
    passwords = wait_for(lambda: json.loads(password_file.read_text()) if password_file.exists() else None, 60,
                         "generated password", proc, log)  # fmt: skip
    user, password = next(iter(passwords.items()))
    token = api.post("/auth/token", json={"username": user, "password": password})
    assert token.status_code in (200, 201), token.text
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def all_dags() -> list[str] | None:
        ids = sorted(d["dag_id"] for d in api.get("/api/v2/dags").json()["dags"])
        return ids if len(ids) >= 4 else None

    assert wait_for(all_dags, 300, "the four DAGs", proc, log) == [
        "vidrec_fresh",
        "vidrec_nightly",
        "vidrec_publish",
        "vidrec_train",
    ]
    errors = api.get("/api/v2/importErrors").json()
    assert errors["total_entries"] == 0, errors

    events = [(f"u{u}", VIDEOS[(u + j) % 5][0], T0 + 4 * DAY + j * 3600 + u * 10) for u in range(40) for j in range(3)]
    source = write_source(tmp_path / "src", events=events, comments=[("v1", "tasty")], media=False)
    conf = {"source": str(source), "workdir": str(tmp_path / "work"), "run_date": "2026-12-01", "epochs": 2,
            "tune_seconds": 0, "namespace": f"test-sa-{uuid.uuid4().hex[:8]}", "redis_url": redis_url}  # fmt: skip
    assert api.patch("/api/v2/dags/vidrec_train", json={"is_paused": False}).status_code == 200
    run = api.post("/api/v2/dags/vidrec_train/dagRuns", json={"logical_date": None, "conf": conf})
    assert run.status_code in (200, 201), run.text
    run_id = run.json()["dag_run_id"]

    def finished() -> str | None:
        state = api.get(f"/api/v2/dags/vidrec_train/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_for(finished, 900, "the vidrec_train run to finish", proc, log)
    tasks = api.get(f"/api/v2/dags/vidrec_train/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tasks}
    assert (tmp_path / "work" / "runs" / "2026-12-01" / "evaluate" / "report.json").exists()


def test_make_bench_installs_its_tools():
    """`make bench` first runs scripts/tools.sh for wrk and redis-benchmark (apt-get where missing)."""
    # Under `make test` the parent make's MAKELEVEL/MAKEFLAGS would make this one print "Entering directory".
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    make = subprocess.run(["make", "--no-print-directory", "-n", "bench"], cwd=REPO, env=env, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    lines = make.splitlines()
    tools = lines.index("bash scripts/tools.sh wrk redis-benchmark:redis-tools")
    assert all(tools < i for i, line in enumerate(lines) if "-m benchmarks." in line), make
    done = subprocess.run(["bash", "scripts/tools.sh", "wrk", "redis-benchmark:redis-tools"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0 and os.geteuid() != 0:
        pytest.skip(f"cannot install without root or sudo: {done.stderr}")
    assert done.returncode == 0, done.stderr
    assert subprocess.run(["wrk", "--version"], capture_output=True).returncode in (0, 1)  # wrk exits 1 on --version
