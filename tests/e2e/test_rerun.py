"""A night rerun is a no-op in outcome: `vidrec run` twice for one date (two processes) gives the
same Parquet bytes, model version, model weights and published bytes. Training is bit-reproducible
across processes here (CPU, fixed seeds, the same thread settings); on another machine or thread
count float reductions may differ in the last bits, and then only the Parquet partitions and the
version id are byte-stable."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import redis

from tests.e2e.test_day_zero import DAY, RUN_DATE, T0, VIDEOS, write_source

pytestmark = pytest.mark.slow


def digests(workdir) -> dict[str, str]:
    """Every Parquet partition and every model array, by content."""
    files = [*(workdir / "runs").rglob("*.parquet"), *(workdir / "models").rglob("*.npy")]
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def vidrec_run(source, workdir, redis_url: str, namespace: str) -> dict:
    argv = ["run", "--source", str(source), "--workdir", str(workdir), "--run-date", RUN_DATE,
            "--namespace", namespace, "--redis-url", redis_url, "--epochs", "2", "--tune-seconds", "0"]  # fmt: skip
    code = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))  # the summary JSON, after the printed table


def published(redis_url: str, namespace: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        ks = sorted(k for k in client.scan_iter(f"vidrec:{namespace}:v:*") if not k.endswith(b":meta"))
        return dict(zip(ks, client.mget(ks), strict=True))
    finally:
        client.close()


def test_running_the_same_night_twice_changes_nothing(tmp_path, redis_url, namespace):
    events = [(f"u{u}", VIDEOS[(u + j) % 5][0], T0 + 4 * DAY + j * 3600 + u * 10) for u in range(40) for j in range(3)]
    source = write_source(tmp_path / "src", events=events, comments=[("v1", "so tasty")], media=True)
    work = tmp_path / "work"
    first = vidrec_run(source, work, redis_url, namespace)
    files, lists = digests(work), published(redis_url, namespace)
    assert first["evaluate"]["users_evaluated"] > 0 and first["publish"]["published"]
    assert len(files) >= 12 and len(lists) >= 40

    second = vidrec_run(source, work, redis_url, namespace)
    assert second["train"]["version"] == first["train"]["version"]
    assert second["frame_features"]["frames_decoded"] == 0  # cached, not decoded again
    assert digests(work) == files
    assert second["evaluate"]["metrics"] == first["evaluate"]["metrics"]
    assert published(redis_url, namespace) == lists  # the same keys, the same bytes
