"""The DAG through real Airflow: integrity (DagBag) and `airflow dags test` on a tiny source.

Airflow runs in subprocesses with an AIRFLOW_HOME of the test's own (SQLite), so its
configuration never leaks into the test process.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cache import keys
from tests.conftest import REPO, RUN_DATE


def _airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIDREC_TASK_RETRIES"}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    subprocess.run(
        [str(REPO / ".venv/bin/airflow"), "db", "migrate"], env=_airflow_env(home), check=True, capture_output=True
    )
    return home


def test_dagbag_integrity(airflow_home):
    code = """
import json
import os
from airflow.dag_processing.dagbag import DagBag
# Airflow 3.3 dropped DagBag(include_examples=...): examples are off by AIRFLOW__CORE__LOAD_EXAMPLES.
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
dag = bag.dags.get("vidrec_nightly")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tags": {d.dag_id: sorted(d.tags) for d in bag.dags.values()},
    "doc": {d.dag_id: bool(d.doc_md) for d in bag.dags.values()},
    "retries": {f"{d.dag_id}.{t.task_id}": t.retries for d in bag.dags.values() for t in d.tasks},
    "task_docs": {f"{d.dag_id}.{t.task_id}": bool(t.doc_md) for d in bag.dags.values() for t in d.tasks},
    "schedules": {d.dag_id: type(d.timetable).__name__ for d in bag.dags.values()},
    "order": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} if dag else {},
    "train_order": {t.task_id: sorted(t.downstream_task_ids) for t in bag.dags["vidrec_train"].tasks},
}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=_airflow_env(airflow_home), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["dags"] == ["vidrec_fresh", "vidrec_nightly", "vidrec_publish", "vidrec_train"]
    assert all("vidrec" in tags for tags in info["tags"].values())
    assert all(info["doc"].values()) and all(info["task_docs"].values()), info["task_docs"]
    assert all(r >= 1 for r in info["retries"].values())  # production retries
    assert info["schedules"]["vidrec_train"] == info["schedules"]["vidrec_publish"] == "NullTimetable"  # manual
    assert info["train_order"]["validate"] == ["ingest"]
    assert info["train_order"]["evaluate"] == ["publish_requested"]
    assert info["train_order"]["publish_requested"] == ["publish"]
    assert info["order"]["ingest"] == ["frame_features_shard", "text_features"]
    assert info["order"]["frame_shards"] == ["frame_features_shard"]  # the mapped shards
    assert info["order"]["frame_features_shard"] == ["frame_features"]  # then the reduce
    assert info["order"]["dataset"] == ["train"] and info["order"]["evaluate"] == ["publish_plan"]
    assert info["order"]["publish_plan"] == ["publish_shard"] and info["order"]["publish_shard"] == ["publish"]


@pytest.mark.parametrize("dag_file", ["vidrec_nightly.py", "vidrec_train.py", "vidrec_publish.py", "vidrec_fresh.py"])
def test_dag_parse_does_not_import_heavy_libraries(airflow_home, dag_file):
    code = (
        f"import sys, runpy; runpy.run_path('dags/{dag_file}'); "
        "bad = [m for m in ('tensorflow', 'torch', 'cv2', 'pandas') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_airflow_env(airflow_home), cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]


@pytest.mark.slow
def test_airflow_dags_test_runs_the_nightly_flow(airflow_home, tmp_path, redis_url, redis_client):
    from pipelines.demo_data import DemoConfig, write_demo_source

    source, workdir = tmp_path / "source", tmp_path / "work"
    write_demo_source(DemoConfig(num_videos=24, num_users=60, seed=4), source)
    ns = f"test-airflow-{uuid.uuid4().hex[:8]}"
    conf = {"source": str(source), "workdir": str(workdir), "namespace": ns, "redis_url": redis_url, "epochs": 2,
            "publish_shards": 2}  # fmt: skip
    try:
        out = subprocess.run(
            [str(REPO / ".venv/bin/airflow"), "dags", "test", "vidrec_nightly", RUN_DATE, "--conf", json.dumps(conf)],
            # A failing task ends the run instead of waiting 5 minutes for a retry.
            env=_airflow_env(airflow_home, VIDREC_TASK_RETRIES="0"),
            capture_output=True,
            text=True,
            timeout=420,
        )
        log = out.stdout + out.stderr
        assert out.returncode == 0, log[-4000:]
        assert "new_state=failed" not in log, log[-4000:]
        runs = workdir / "runs" / RUN_DATE
        for step in ("ingest", "frame_features", "text_features", "publish"):
            assert (runs / step / "summary.json").exists(), step
        assert (runs / "dataset" / "split.json").exists() and (runs / "evaluate" / "report.json").exists()
        summary = json.loads((workdir / "runs" / RUN_DATE / "publish" / "summary.json").read_text())
        assert redis_client.get(keys.live_key(ns)).decode() == summary["version"]
        assert summary["users"] == 60 and summary["shards"] == 2
        manifests = sorted((runs / "publish" / f"shards-{summary['version']}").glob("shard-*.json"))
        assert [json.loads(m.read_text())["shard"] for m in manifests] == [0, 1]
        assert sum(json.loads(m.read_text())["users"] for m in manifests) == 60  # each user in one shard
    finally:
        for key in redis_client.scan_iter(match=f"vidrec:{ns}:*"):
            redis_client.unlink(key)


def _dags_test(airflow_home, dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / ".venv/bin/airflow"), "dags", "test", dag_id, RUN_DATE, "--conf", json.dumps(conf)],
        env=_airflow_env(airflow_home, VIDREC_TASK_RETRIES="0"),
        capture_output=True,
        text=True,
        timeout=420,
    )


@pytest.mark.slow
def test_vidrec_train_with_params_then_publish_and_rollback(airflow_home, tmp_path, redis_url, redis_client):
    from cache.writer import TopK, publish_version
    from pipelines.demo_data import DemoConfig, write_demo_source

    source, workdir = tmp_path / "source", tmp_path / "work"
    write_demo_source(DemoConfig(num_videos=24, num_users=60, seed=5), source)
    ns = f"test-train-{uuid.uuid4().hex[:8]}"
    base = {"source": str(source), "workdir": str(workdir), "namespace": ns, "redis_url": redis_url}
    try:
        # a bad param fails at once, before any task has written anything
        bad = _dags_test(airflow_home, "vidrec_train", {**base, "epochs": 0})
        assert bad.returncode != 0 and not (workdir / "runs").exists()

        out = _dags_test(airflow_home, "vidrec_train", {**base, "epochs": 2, "fusion": "weighted_sum", "publish": True})
        log = out.stdout + out.stderr
        assert out.returncode == 0 and "new_state=failed" not in log, log[-4000:]
        runs = workdir / "runs" / RUN_DATE
        assert (runs / "evaluate" / "report.html").exists() and (runs / "evaluate" / "report.json").exists()
        version = json.loads((runs / "train" / "model.json").read_text())["version"]
        fusion = json.loads((workdir / "models" / version / "fusion.json").read_text())
        assert fusion["fusion"] == "weighted_sum" and fusion["mean_modality_weights"]
        assert redis_client.get(keys.live_key(ns)).decode() == version

        # another version goes live; vidrec_publish puts the trained one back by name, then rolls back
        publish_version(redis_client, ns, "20260101-00000000", TopK(["u"], [["v"]], [[1.0]]), (["v"], [1.0]), 600)
        out = _dags_test(airflow_home, "vidrec_publish", {**base, "version": version})
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        assert redis_client.get(keys.live_key(ns)).decode() == version
        out = _dags_test(airflow_home, "vidrec_publish", {**base, "rollback": True})
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        assert redis_client.get(keys.live_key(ns)).decode() == "20260101-00000000"
    finally:
        for key in redis_client.scan_iter(match=f"vidrec:{ns}:*"):
            redis_client.unlink(key)


def test_dags_and_the_cli_share_every_default(airflow_home, monkeypatch):
    """Every DAG param that is a setting has the default `vidrec run` uses (both come from the
    config dataclasses, pipelines.options); the DAG's config from its defaults is the CLI's."""
    code = """
import importlib, json
out = {}
for name in ("vidrec_nightly", "vidrec_train", "vidrec_publish", "vidrec_fresh"):
    params = importlib.import_module(name).PARAMS
    out[name] = {k: p.value for k, p in params.items()}
print(json.dumps(out))
"""
    env = {**_airflow_env(airflow_home), "PYTHONPATH": f"{REPO / 'dags'}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    defaults = json.loads(out.stdout.strip().splitlines()[-1])

    for var in ("VIDREC_NAMESPACE", "VIDREC_REDIS_URL", "VIDREC_WORKDIR"):  # the CLI's overrides
        monkeypatch.delenv(var, raising=False)
    from pipelines.cli import _config, build_parser
    from pipelines.dag_support import config_from_params
    from pipelines.options import BY_NAME

    cli = vars(build_parser().parse_args(["run", "--source", "var/demo-source"]))
    for dag, params in defaults.items():
        for name, value in params.items():
            if name not in BY_NAME or (dag, name) == ("vidrec_train", "frame_shards"):  # one task there
                continue
            cli_value = cli.get(name, BY_NAME[name].default)  # publish_gate is no CLI flag
            cli_value = ",".join(cli_value) if isinstance(cli_value, tuple) else cli_value
            assert value == cli_value, f"{dag}.{name}: DAG default {value!r}, vidrec run default {cli_value!r}"
    nightly = config_from_params(defaults["vidrec_nightly"])
    assert nightly == _config(build_parser().parse_args(["run", "--source", "var/demo-source"]))
    assert nightly.model.epochs == 20  # the nightly DAG trained 10 while TwoTowerConfig said 20
