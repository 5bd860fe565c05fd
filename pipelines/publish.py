"""publish: every active user's top-k and a popular list to Redis, under a new version, atomically.

1. Score: user vectors (user tower over each user's last watched videos, all known events) x
   item matrix, exact, in blocks; each user's watched videos excluded.
2. Write: versioned keys in pipelined chunks, each with a TTL (2-3x the refresh period), so a
   failed night leaves the previous version serving until it is replaced.
3. Verify: every user key exists and a sample reads back byte-identical.
4. Flip: one SET of ``vidrec:{ns}:live``. Readers see the old version or the new one, never a mix.

Republishing the same version writes the same keys with the same values (idempotent).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines import frame_features, ingest, train
from pipelines.config import PipelineConfig, run_date_end_epoch_s, write_json
from recsys import keys
from recsys.metrics import topk_with_exclusions
from recsys.model import last_history

log = logging.getLogger(__name__)

WRITE_CHUNK = 1000
VERIFY_SAMPLE = 50


class PublishError(RuntimeError):
    """The new version could not be written or verified; the live pointer was not moved."""


@dataclass(frozen=True)
class TopK:
    user_ids: list[str]
    item_ids: list[list[str]]
    scores: list[list[float]]


def score_users(
    model: train.ExportedModel, events: pd.DataFrame, k: int, unavailable: frozenset[str] = frozenset()
) -> TopK:
    """Top-k unwatched videos for every user in the model's vocabulary who has an event.

    ``unavailable``: videos never to recommend (their media file was quarantined as unplayable).
    """
    uidx = {u: i for i, u in enumerate(model.users)}
    iidx = {v: i for i, v in enumerate(model.items)}
    known = events[events["user_id"].isin(uidx) & events["video_id"].isin(iidx)]
    u = known["user_id"].map(uidx).to_numpy()
    i = known["video_id"].map(iidx).to_numpy()
    active = np.unique(u)
    hist, weight = last_history(
        u,
        i,
        known["ts"].to_numpy(),
        len(model.users),
        model.config.max_history,
        len(model.items),
        train.completion(known),
    )
    watched = known.assign(u=u, i=i).groupby("u")["i"].agg(lambda s: np.unique(s.to_numpy()))
    vectors = model.user_tower(hist[active], active.astype(np.int32), weight[active])
    blocked = np.array(sorted(iidx[v] for v in unavailable if v in iidx), dtype=np.int64)
    exclude = [np.union1d(watched[a], blocked) for a in active]
    idx, scores = topk_with_exclusions(vectors, model.item_vectors, k, exclude)
    items = [[model.items[j] for j in row if j >= 0] for row in idx]
    return TopK(
        user_ids=[model.users[a] for a in active],
        item_ids=items,
        scores=[row[: len(its)].tolist() for row, its in zip(scores, items, strict=True)],
    )


def popular_items(events: pd.DataFrame, end_epoch_s: int, window_days: int, k: int) -> tuple[list[str], list[float]]:
    """Most-watched videos in the ``window_days`` before ``end_epoch_s``; score = share of views."""
    recent = events[events["ts"] >= end_epoch_s - window_days * 86400]
    if recent.empty:  # a quiet window: fall back to all history rather than an empty list
        recent = events
    counts = (
        recent.groupby("video_id")
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["n", "video_id"], ascending=[False, True])
        .head(k)
    )
    return counts["video_id"].tolist(), (counts["n"] / len(recent)).astype(float).tolist()


def publish_version(
    client, ns: str, version: str, topk: TopK, popular: tuple[list[str], list[float]], ttl_seconds: int
) -> dict[str, object]:
    """Write, verify, flip. Raises PublishError (live pointer untouched) if verification fails."""
    import redis

    values = {
        keys.user_key(ns, version, user): keys.encode_items(items, scores)
        for user, items, scores in zip(topk.user_ids, topk.item_ids, topk.scores, strict=True)
    }
    values[keys.popular_key(ns, version)] = keys.encode_items(*popular)
    key_list = list(values)
    try:
        for start in range(0, len(key_list), WRITE_CHUNK):
            pipe = client.pipeline(transaction=False)
            for key in key_list[start : start + WRITE_CHUNK]:
                pipe.set(key, values[key], ex=ttl_seconds)
            pipe.execute()
        present = sum(client.exists(*key_list[s : s + WRITE_CHUNK]) for s in range(0, len(key_list), WRITE_CHUNK))
        if present != len(key_list):
            raise PublishError(f"verification failed: {present} of {len(key_list)} keys present after write")
        rng = np.random.default_rng(0)
        sample = [key_list[j] for j in rng.choice(len(key_list), min(VERIFY_SAMPLE, len(key_list)), replace=False)]
        for key, got in zip(sample, client.mget(sample), strict=True):
            if got != values[key]:
                raise PublishError(f"verification failed: {key} reads back different bytes")
        meta = {
            "version": version,
            "users": len(topk.user_ids),
            "popular": len(popular[0]),
            "bytes": sum(len(v) for v in values.values()),
        }
        client.set(keys.meta_key(ns, version), json.dumps(meta), ex=ttl_seconds)
        previous = client.get(keys.live_key(ns))
        client.set(keys.live_key(ns), version)  # the flip: one command
    except redis.RedisError as exc:
        raise PublishError(f"Redis error while publishing {version}: {exc}") from exc
    meta["previous_version"] = previous.decode() if previous else None
    return meta


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    import redis

    t0 = time.perf_counter()
    model = train.load_model(cfg, run_date)
    events = ingest.load(cfg, run_date).events
    unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
    topk = score_users(model, events, cfg.topk, unplayable)
    popular = popular_items(
        events[~events["video_id"].isin(unplayable)], run_date_end_epoch_s(run_date), cfg.popular_window_days, cfg.topk
    )
    client = redis.Redis.from_url(cfg.redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        meta = publish_version(client, cfg.namespace, model.version, topk, popular, cfg.ttl_seconds)
    finally:
        client.close()
    summary = {**meta, "namespace": cfg.namespace, "seconds": round(time.perf_counter() - t0, 2)}
    write_json(cfg.partition(run_date, "publish") / "summary.json", summary)
    log.info("publish %s: %s", run_date, summary)
    return summary
