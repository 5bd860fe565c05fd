"""Text-feature throughput next to the encoder alone on the same texts, measured in the same run.

    python -m benchmarks.text_features [--videos N] [--threads T]

Pipeline items/s: compute_text_features (cleaning, dedupe, weighting, aggregation, cold cache)
over a generated demo source's videos and comments. Reference: the text encoder alone on the
exact texts the pipeline encodes. Target ratio >= 0.8. Also: a rerun with a warm cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from pipelines.demo_data import DemoConfig, plan_demo_source
    from pipelines.text_features import CachedTextEncoder, caption_text, clean_text, compute_text_features
    from recsys.contract import validate_source
    from recsys.encoders import get_text_encoder

    plan = plan_demo_source(DemoConfig(num_videos=args.videos, num_users=5, seed=3))
    src = validate_source(plan.videos, plan.comments, plan.events)
    encoder = get_text_encoder("all-minilm-l6-v2", args.threads)
    encoder.encode(["warm up"])
    tmp = Path(tempfile.mkdtemp(prefix="vidrec-bench-"))

    cached = CachedTextEncoder(encoder, tmp / "cache.parquet")
    t0 = time.perf_counter()
    out = compute_text_features(src.videos, src.comments, cached, 20, 500, now_epoch_s=2e9)
    t_pipe = time.perf_counter() - t0
    items = len(out) + int(out["num_comments"].sum())

    captions = [
        clean_text(caption_text(t, d, g), 500)
        for t, d, g in zip(src.videos["title"], src.videos["description"], src.videos["tags"], strict=True)
    ]
    texts = [c for c in captions if c] + [clean_text(t, 500) for t in src.comments["text"]]
    t0 = time.perf_counter()
    encoder.encode(list(dict.fromkeys(texts)))
    t_enc = time.perf_counter() - t0

    t0 = time.perf_counter()
    compute_text_features(src.videos, src.comments, cached, 20, 500, now_epoch_s=2e9)
    t_warm = time.perf_counter() - t0
    report(
        "text_features",
        [
            {
                "figure": "pipeline items/s (cold cache)",
                "ours": items / t_pipe,
                "reference": items / t_enc,
                "ratio": t_enc / t_pipe,
                "target": 0.8,
                "reference_is": f"{encoder.name} alone on the same {len(set(texts))} distinct texts",
            },
            {
                "figure": "rerun items/s (warm cache)",
                "ours": items / t_warm,
                "reference": items / t_pipe,
                "ratio": t_pipe / t_warm,
                "target": 10.0,
                "reference_is": "the cold run",
            },
        ],
        {"videos": len(out), "comments": int(np.sum(out["num_comments"])), "threads": args.threads},
    )


if __name__ == "__main__":
    main()
