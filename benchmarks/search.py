"""Search throughput next to the cache-hit recommendation path of the same server, and the ONNX
caption encoder next to sentence-transformers on the same queries.

    python -m benchmarks.search [--workdir var/results/demo-work] [--run-date 2026-11-28]
                                [--concurrency C] [--seconds S]

1. Takes the model the run date's train step exported under ``--workdir`` (default: the demo
   model of ``make results``; ``make demo``'s is ``--workdir var/work --run-date <its date>``),
   publishes 1,000 users' lists of it to a ``bench-search`` namespace and makes it live there.
2. Encodes 300 queries (titles and topic words of the catalogue), one per call as the API does,
   with the ONNX encoder (ONNX Runtime + tokenizers) and with sentence-transformers (PyTorch).
3. Starts the API (uvicorn, one worker) with search configured and drives, with ``wrk``, first
   ``GET /v1/users/{random user}/recommendations?k=20`` (every answer a cache hit), then
   ``GET /v1/search?q={query}&k=20`` twice, each for S seconds at C connections: every query new
   (a request number appended, so each is encoded and scored: the worst case) and the 300 queries
   drawn again and again (after the first, each answered from the API's kept answers, as a search
   service's head queries are; ``search_query_cache``). Well-formed requests of both routes take
   the pure-ASGI fast paths (``serving.fastpath``).

Target (issue 17): search requests/s >= 0.3 of the cache-hit path's. wrk, the API and Redis share
this machine's cores. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np

from benchmarks._report import report
from benchmarks.serving import free_port, run_wrk_script
from cache.client import DEFAULT_REDIS_URL
from cache.writer import TopK, connect, publish_version, unlink_matching
from pipelines.redis_server import ensure_redis

NS = "bench-search"


def queries(videos: list[dict], n: int, rng: np.random.Generator) -> list[str]:  # type: ignore[type-arg]
    titled = [str(v["title"]) for v in videos if isinstance(v.get("title"), str) and v["title"].strip()]
    words = sorted({w for t in titled for w in t.lower().split() if w.isalpha() and len(w) > 3})
    out = [titled[int(i)] for i in rng.integers(0, len(titled), n // 2)]
    out += [" ".join(rng.choice(words, 2, replace=False)) for _ in range(n - len(out))]
    return out


def per_query_rate(encode, qs: list[str]) -> float:  # type: ignore[no-untyped-def]
    encode(qs[:5])  # warm-up
    t0 = time.perf_counter()
    for q in qs:
        encode([q])
    return len(qs) / (time.perf_counter() - t0)


def run_wrk(url: str, paths: list[str], connections: int, seconds: int, unique: bool = False) -> dict[str, float]:
    """Requests drawn at random from ``paths``; ``unique``: each one's query made new (a request
    number appended to it), so no query is ever answered from the API's query cache."""
    lua_paths = ",".join(json.dumps(p) for p in paths)
    suffix = ' .. "%20" .. n' if unique else ""
    script = (
        "math.randomseed(7)\n"
        f"local paths = {{{lua_paths}}}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  return wrk.format("GET", paths[math.random(1, #paths)]{suffix})\n'
        "end\n"
    )
    return run_wrk_script(url, script, connections, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="var/results/demo-work")
    ap.add_argument("--run-date", default="2026-11-28")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks.search needs `wrk` on PATH (Debian: apt install wrk)")
    from pipelines import artifacts, ingest
    from pipelines.config import PipelineConfig
    from recsys.encoders import SentenceTransformerEncoder
    from recsys.text_onnx import OnnxTextEncoder, export_text_onnx

    cfg = PipelineConfig(source=Path("."), workdir=args.workdir)
    try:
        model = artifacts.load_model(cfg, args.run_date)
    except FileNotFoundError as exc:
        sys.exit(f"{exc} (run `make results` or `make demo` first, or give --workdir/--run-date)")
    videos = ingest.load(cfg, args.run_date).videos.to_dict("records")
    qs = queries(videos, 300, np.random.default_rng(0))
    encoder_dir = export_text_onnx()
    onnx_rate = per_query_rate(OnnxTextEncoder(encoder_dir, num_threads=1).encode, qs)
    st_rate = per_query_rate(SentenceTransformerEncoder(num_threads=1).encode, qs)

    redis_url = os.environ.get("VIDREC_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_redis(redis_url, Path("var/state"))
    client = connect(redis_url)
    users = [f"u{i}" for i in range(1000)]
    rng = np.random.default_rng(1)
    lists = [[model.items[int(j)] for j in rng.choice(len(model.items), 100, replace=False)] for _ in users]
    scores = [list(np.linspace(1, 0, 100)) for _ in users]
    publish_version(client, NS, model.version, TopK(users, lists, scores), (lists[0], scores[0]), 600)
    port = free_port()
    env = {
        **os.environ,
        "VIDREC_REDIS_URL": redis_url,
        "VIDREC_NAMESPACE": NS,
        "VIDREC_MODEL_ROOT": str(Path(args.workdir) / "models"),
        "VIDREC_TEXT_ENCODER_DIR": str(encoder_dir),
    }
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port), "--namespace", NS]
    api = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                hit = httpx.get(f"{base}/v1/users/u1/recommendations", params={"k": 20}, timeout=1).json()
                found = httpx.get(f"{base}/v1/search", params={"q": qs[0], "k": 20}, timeout=30).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert hit["source"] == "cache" and len(found["items"]) == 20, (hit, found)
        rec_paths = [f"/v1/users/{u}/recommendations?k=20" for u in users]
        search_paths = [f"/v1/search?k=20&q={urllib.parse.quote(q)}" for q in qs]
        run_wrk(base, search_paths, args.concurrency, 2, unique=True)  # warm-up, leaving the cache cold
        rec = run_wrk(base, rec_paths, args.concurrency, args.seconds)
        fresh = run_wrk(base, search_paths, args.concurrency, args.seconds, unique=True)
        search = run_wrk(base, search_paths, args.concurrency, args.seconds)
    finally:
        api.terminate()
        api.wait(10)
        unlink_matching(client, f"vidrec:{NS}:*", 5000)
        client.close()
    report(
        "search",
        [
            {
                "figure": "search requests per second, the 300 queries repeating",
                "ours": search["rps"],
                "reference": rec["rps"],
                "ratio": search["rps"] / rec["rps"],
                "target": 0.3,
                "reference_is": "cache-hit recommendations, same server and concurrency",
            },
            {
                "figure": "search requests per second, every query new (each one encoded)",
                "ours": fresh["rps"],
                "reference": rec["rps"],
                "ratio": fresh["rps"] / rec["rps"],
                "target": 0.0,
                "reference_is": "cache-hit recommendations, same server and concurrency",
            },
            {
                "figure": "search p99 latency ms (ratio: hit/search)",
                "ours": search["p99_ms"],
                "reference": rec["p99_ms"],
                "ratio": rec["p99_ms"] / search["p99_ms"],
                "target": 0.0,
                "reference_is": "cache-hit recommendations p99",
            },
            {
                "figure": "query encodings per second (1 thread)",
                "ours": onnx_rate,
                "reference": st_rate,
                "ratio": onnx_rate / st_rate,
                "target": 1.0,
                "reference_is": "sentence-transformers (PyTorch), same queries, one per call",
            },
        ],
        {
            "model_version": model.version,
            "videos": len(model.items),
            "queries": len(qs),
            "concurrency": args.concurrency,
            "server": "uvicorn 1 worker",
            "cpus": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
