"""The production profile on one machine: Airflow with the CeleryExecutor (Redis as the broker),
its metadata DB on PostgreSQL, a scheduler, a dag processor, an API server and two Celery
workers, and a 3-master Redis Cluster for the published lists.

    python -m pipelines.cluster_profile up|down|status|demo      (scripts/cluster.sh, make cluster-demo)

``up`` starts what does not answer yet (PostgreSQL on 127.0.0.1:5432 when it answers, else one of
the project's own under ``var/cluster/postgres`` on port 5433; the project's Redis on 6379 as the
Celery broker, database 1; the Redis Cluster masters; the Airflow components) and records each
process it started under ``var/cluster/`` (pids, logs, the Airflow home). ``down`` stops exactly
those. ``demo`` is ``up``, then the nightly DAG triggered through the REST API (not ``dags test``)
on a generated demo source with its frame and publish shards mapped, the run's outcome and every
task instance's worker printed, the published version read back from the cluster, then ``down``.

Every worker names itself in the task instances' hostname (``worker_hostname``: the
``VIDREC_WORKER_NAME`` of its process, then the machine's name), so a run shows which worker ran
which shard. Nothing here is imported by a DAG file or the API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "var" / "cluster"
API_PORT = 28080
CLUSTER_PORTS = [27001, 27002, 27003]
BROKER_URL = "redis://127.0.0.1:6379/1"
WORKERS = ("worker1", "worker2")
COMPONENTS = ("api-server", "scheduler", "dag-processor", *WORKERS)


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` here: ``<VIDREC_WORKER_NAME>@<machine>`` in a worker."""
    name = os.environ.get("VIDREC_WORKER_NAME")
    return f"{name}@{socket.getfqdn()}" if name else socket.getfqdn()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _postgres(state: Path, fresh: bool = False) -> str:
    """A PostgreSQL URL with the ``vidrec_airflow`` database: the server on 5432 when it answers,
    else the project's own (initdb once, then pg_ctl start on 5433). ``fresh``: dropped and
    created again (the demo starts from an empty metadata DB)."""
    port = 5432
    if not _answers("127.0.0.1", port):
        port, data = 5433, state / "postgres"
        if not (data / "PG_VERSION").exists():
            subprocess.run(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust"], check=True,
                           capture_output=True)  # fmt: skip
        if not _answers("127.0.0.1", port):
            subprocess.run(["pg_ctl", "-D", str(data), "-l", str(state / "postgres.log"), "-w", "start", "-o",
                            f"-p {port} -k {state} -c listen_addresses=127.0.0.1"], check=True)  # fmt: skip
            (state / "postgres.started").write_text(str(data))
    if fresh:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                        "DROP DATABASE IF EXISTS vidrec_airflow WITH (FORCE)"], check=True, capture_output=True)  # fmt: skip
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc",
         "SELECT 1 FROM pg_database WHERE datname = 'vidrec_airflow'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if exists != "1":
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                        "CREATE DATABASE vidrec_airflow"], check=True, capture_output=True)  # fmt: skip
    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/vidrec_airflow"


def airflow_env(state: Path, db_url: str) -> dict[str, str]:
    secret_file = state / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(state / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CORE__HOSTNAME_CALLABLE="pipelines.cluster_profile.worker_hostname",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{API_PORT}/execution/",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
        AIRFLOW__CELERY__BROKER_URL=BROKER_URL,
        AIRFLOW__CELERY__RESULT_BACKEND="db+" + db_url,
        AIRFLOW__API__PORT=str(API_PORT),
        AIRFLOW__API_AUTH__JWT_SECRET=secret_file.read_text(),
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
        PATH=f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        TF_USE_LEGACY_KERAS="1",
        HF_HUB_OFFLINE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        VIDREC_TASK_RETRIES="0",
    )
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_process_group(pgid: int, grace: float = 10.0, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM to the process group ``pgid``, up to ``grace`` seconds for every member to go (an
    Airflow scheduler or dag-processor can outlive the process that started it), then SIGKILL to
    whatever is left. ``reap``: called while waiting, for a caller whose child leads the group (a
    zombie leader still counts as a member until reaped, e.g. ``Popen.poll``)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            os.killpg(pgid, 0)  # raises once no member is left
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def up(state: Path = STATE, fresh_db: bool = False) -> dict[str, object]:
    """Start everything the profile needs that is not running; returns what it runs on."""
    from pipelines.redis_server import ensure_redis, start_cluster

    state.mkdir(parents=True, exist_ok=True)
    db_url = _postgres(state, fresh_db)
    if ensure_redis("redis://127.0.0.1:6379/0", state / "redis"):
        (state / "redis.started").touch()
    cluster_url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in CLUSTER_PORTS)
    if not all(_answers("127.0.0.1", p) for p in CLUSTER_PORTS):
        cluster_url = start_cluster(CLUSTER_PORTS, state / "redis-cluster")
    env = airflow_env(state, db_url)
    airflow = str(REPO / ".venv" / "bin" / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")
    commands = {
        "api-server": [airflow, "api-server", "--port", str(API_PORT)],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        **{w: [airflow, "celery", "worker", "--concurrency", "1", "--celery-hostname", f"{w}@%h", "--skip-serve-logs"]
           for w in WORKERS},
    }  # fmt: skip
    for name, cmd in commands.items():
        pidfile = state / f"{name}.pid"
        if pidfile.exists() and _pid_alive(int(pidfile.read_text())):
            continue
        with (state / f"{name}.log").open("a") as log:
            proc = subprocess.Popen(
                cmd, env={**env, "VIDREC_WORKER_NAME": name} if name in WORKERS else env, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        pidfile.write_text(str(proc.pid))
    return {"api": f"http://127.0.0.1:{API_PORT}", "metadata_db": db_url, "broker": BROKER_URL, "redis": cluster_url}


def down(state: Path = STATE) -> list[str]:
    """Stop what ``up`` started (process groups by pidfile, the Redis Cluster, a Redis or
    PostgreSQL of the project's own); returns what was stopped."""
    from pipelines.redis_server import stop_cluster, stop_redis

    stopped = []
    for name in COMPONENTS:
        pidfile = state / f"{name}.pid"
        if not pidfile.exists():
            continue
        pid = int(pidfile.read_text())
        if _pid_alive(pid):
            stop_process_group(pid)
            stopped.append(name)
        pidfile.unlink()
    if (state / "redis-cluster").exists():
        stop_cluster(CLUSTER_PORTS, state / "redis-cluster")
        stopped.append("redis-cluster")
    if (state / "redis.started").exists():
        stop_redis("redis://127.0.0.1:6379/0", state / "redis")
        (state / "redis.started").unlink()
        stopped.append("redis")
    if (state / "postgres.started").exists():
        subprocess.run(["pg_ctl", "-D", (state / "postgres.started").read_text(), "-w", "stop"], check=False,
                       capture_output=True)  # fmt: skip
        (state / "postgres.started").unlink()
        stopped.append("postgres")
    return stopped


def status(state: Path = STATE) -> dict[str, object]:
    running = {}
    for name in COMPONENTS:
        pidfile = state / f"{name}.pid"
        running[name] = pidfile.exists() and _pid_alive(int(pidfile.read_text()))
    running["redis-cluster"] = all(_answers("127.0.0.1", p) for p in CLUSTER_PORTS)
    running["api-health"] = _answers("127.0.0.1", API_PORT)
    return running


class Api:
    """The Airflow REST API with a token from the generated simple-auth-manager password."""

    def __init__(self, base: str, home: Path) -> None:
        import httpx

        self.http = httpx.Client(base_url=base, timeout=30)
        self.home = home

    def wait(self, check, seconds: float, what: str):  # type: ignore[no-untyped-def]
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if (value := check()) is not None:
                    return value
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(2)
        raise TimeoutError(f"no {what} within {seconds:.0f} s (logs under {STATE})")

    def login(self) -> None:
        self.wait(lambda: self.http.get("/api/v2/monitor/health").status_code == 200 or None, 300, "api-server")
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        users = self.wait(lambda: json.loads(passwords.read_text()) if passwords.exists() else None, 60, "password")
        user, password = next(iter(users.items()))
        token = self.http.post("/auth/token", json={"username": user, "password": password})
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str) -> dict:  # type: ignore[type-arg]
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()


def run_nightly(api: Api, conf: dict[str, object], seconds: float) -> tuple[str, list[dict]]:  # type: ignore[type-arg]
    """Trigger vidrec_nightly through the REST API and wait for it; (state, task instances)."""
    api.wait(lambda: api.get("/api/v2/dags/vidrec_nightly")["dag_id"], 300, "the parsed vidrec_nightly DAG")
    api.http.patch("/api/v2/dags/vidrec_nightly", json={"is_paused": False}).raise_for_status()
    run = api.http.post("/api/v2/dags/vidrec_nightly/dagRuns", json={"logical_date": None, "conf": conf})
    run.raise_for_status()
    run_id = run.json()["dag_run_id"]
    path = f"/api/v2/dags/vidrec_nightly/dagRuns/{run_id}"

    def finished() -> str | None:
        state = api.get(path)["state"]
        return state if state in ("success", "failed") else None

    state = api.wait(finished, seconds, "end of the vidrec_nightly run")
    return state, api.get(f"{path}/taskInstances?limit=100")["task_instances"]


def demo(seconds: float = 600) -> int:
    """up, the nightly DAG through the REST API on a small demo source, the outcome, down."""
    from cache import keys
    from cache.writer import connect
    from pipelines.demo_data import DemoConfig, write_demo_source

    work = STATE / "demo"
    source = work / "source"
    if not (source / "videos.csv").exists():
        write_demo_source(DemoConfig(num_videos=24, num_users=60, seed=4), source)
    try:
        t0 = time.monotonic()
        down()  # a previous demo's leftovers
        where = up(fresh_db=True)
        print(json.dumps({"profile": where}, indent=2), flush=True)
        api = Api(str(where["api"]), STATE / "airflow")
        api.login()
        ns = f"cluster-demo-{uuid.uuid4().hex[:6]}"
        # the workdir as a URL, as a shared one would be given (s3://... elsewhere; pipelines/storage.py)
        conf = {"source": str(source), "workdir": (work / "work").resolve().as_uri(), "namespace": ns, "redis_url": where["redis"],
                "run_date": "2026-11-28", "epochs": 2, "tune_seconds": 0, "frame_shards": 2, "publish_shards": 2}  # fmt: skip
        t_up = time.monotonic() - t0
        state, tasks = run_nightly(api, conf, seconds)
        for t in sorted(tasks, key=lambda t: (t["start_date"] or "", t["task_id"], t["map_index"])):
            print(f"{t['task_id']:<22} {t['map_index']:>3} {t['state']:<10} {t['hostname']}")
        mapped = [t for t in tasks if t["task_id"] in ("frame_features_shard", "publish_shard")]
        workers = sorted({str(t["hostname"]).split("@")[0] for t in mapped if t["hostname"]})
        done = work / "work" / "runs" / "2026-11-28" / "publish" / "summary.json"
        summary = json.loads(done.read_text()) if state == "success" and done.exists() else {}
        client = connect(str(where["redis"]))
        live = client.get(keys.live_key(ns))
        client.close()
        outcome = {"run": state, "mapped_task_workers": workers, "published": summary.get("version"),
                   "users": summary.get("users"), "live_in_cluster": live.decode() if live else None,
                   "seconds_to_api_up": round(t_up), "seconds_in_all": round(time.monotonic() - t0)}  # fmt: skip
        print(json.dumps({"outcome": outcome}, indent=2), flush=True)
        ok = state == "success" and len(workers) == 2 and outcome["live_in_cluster"] == summary.get("version")
        return 0 if ok else 1
    finally:
        print(json.dumps({"stopped": down()}), flush=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "up":
        print(json.dumps(up(), indent=2))
    elif command == "down":
        print(json.dumps({"stopped": down()}))
    elif command == "status":
        print(json.dumps(status(), indent=2))
    elif command == "demo":
        return demo()
    else:
        print(f"usage: {sys.argv[0]} up|down|status|demo", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
