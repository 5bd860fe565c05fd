"""publish: every active user's top-k, similar videos and popular lists to Redis, under a new
version, atomically.

1. Score: user vectors (user tower over each user's last watched videos, all known events) x
   item matrix, exact (or ANN past ``ann_min_items``), in blocks; each user's watched videos
   excluded. Similar videos: item x item on the same embeddings, the video itself excluded.
   Popular: most watched in the window, overall and per category.
2. Write, verify, flip, clean up: ``cache.writer`` (the Redis contract's write path). A failed
   night leaves the previous version serving until it is replaced.

In shards (``publish_shards``; Airflow maps one task per shard): ``plan`` decides what tonight
publishes (the gate, a lost live version restored, a popular-only night) and writes it down;
each ``run_shard`` scores and writes the lists of its users (crc32 of the user id mod shards) under
the new version, with a manifest; ``finish`` checks every shard's manifest and every user's key,
writes the similar and popular lists, and flips the live pointer. A failed shard leaves the previous
version live; a retried one writes the same bytes. ``run`` does the three in one process.

Also here: the quality gate against the live version, the popular-only version of a night
without a model, republishing a version from its model folder, and the record of what is live.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cache import keys
from cache.packed import VocabBytes
from cache.writer import PublishError, TopK, TopKMatrix, Written, connect, publish_version, write_lists
from pipelines import artifacts, fitting, frame_features, ingest, storage
from pipelines.config import PipelineConfig, run_date_end_epoch_s, shard_of
from pipelines.storage import write_json
from recsys.model import last_history
from recsys.online import EXCLUDED_FILE
from recsys.retrieval import rank, top_k

log = logging.getLogger(__name__)


def score_users(
    model: artifacts.ExportedModel,
    events: pd.DataFrame,
    k: int,
    unavailable: frozenset[str] = frozenset(),
    ann_min_items: int = 250_000,
    shard: tuple[int, int] = (0, 1),
) -> tuple[TopKMatrix, np.ndarray, list[np.ndarray]]:
    """Top-k unwatched videos for every user in the model's vocabulary who has an event (of shard
    ``shard[0]`` of ``shard[1]``); also the users' indices and what each list left out.

    ``unavailable``: videos never to recommend (their media file was quarantined as unplayable).
    """
    uidx = {u: i for i, u in enumerate(model.users)}
    iidx = {v: i for i, v in enumerate(model.items)}
    known = events[events["user_id"].isin(uidx) & events["video_id"].isin(iidx)]
    u = known["user_id"].map(uidx).to_numpy()
    i = known["video_id"].map(iidx).to_numpy()
    active = np.unique(u)
    if shard[1] > 1:
        active = active[np.array([shard_of(model.users[a], shard[1]) == shard[0] for a in active], dtype=bool)]
    hist, weight = last_history(
        u,
        i,
        known["ts"].to_numpy(),
        len(model.users),
        model.config.max_history,
        len(model.items),
        fitting.completion(known),
    )
    watched = known.assign(u=u, i=i).groupby("u")["i"].agg(lambda s: np.unique(s.to_numpy()))
    vectors = model.user_tower(hist[active], active.astype(np.int32), weight[active])
    blocked = np.array(sorted(iidx[v] for v in unavailable if v in iidx), dtype=np.int64)
    exclude = [np.union1d(watched[a], blocked) for a in active]
    # Freshness as of the latest event known (else the model's reference time): the lists serve
    # from now until the next publish.
    at = float(events["ts"].max()) if len(events) else model.reference_ts
    idx, scores = rank(vectors, model.catalogue(), k, exclude, at=at, ann_min_items=ann_min_items)
    return TopKMatrix([model.users[a] for a in active], VocabBytes(model.items), idx, scores), active, exclude


def save_excluded(path: Path, users: np.ndarray, exclude: list[np.ndarray]) -> None:
    """What each published user's list left out (watched or unplayable videos); beside the model
    (``EXCLUDED_FILE``) the refresher leaves the same out (``recsys.online.OnlineModel``)."""
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in exclude])]).astype(np.int64)
    indices = np.concatenate(exclude).astype(np.int32) if exclude else np.zeros(0, np.int32)

    storage.save_npz(path, users=np.asarray(users, np.int64), indptr=indptr, indices=indices)


def load_excluded(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    z = storage.load_npz(path)
    users, indptr, indices = z["users"], z["indptr"], z["indices"]
    return users, [indices[a:b] for a, b in zip(indptr[:-1], indptr[1:], strict=True)]


def similar_items(
    model: artifacts.ExportedModel, k: int, unavailable: frozenset[str] = frozenset(), ann_min_items: int = 250_000
) -> TopKMatrix:
    """For every video in the model, the ``k`` nearest other videos by item-embedding dot product
    (the item tower's unit vectors: cosine similarity)."""
    iidx = {v: i for i, v in enumerate(model.items)}
    blocked = np.array(sorted(iidx[v] for v in unavailable if v in iidx), dtype=np.int64)
    exclude = [np.union1d([i], blocked) for i in range(len(model.items))]
    vectors = model.layout.similarity_vectors(model.item_vectors)
    idx, scores = top_k(vectors, vectors, k, exclude, ann_min_items=ann_min_items)
    return TopKMatrix(list(model.items), VocabBytes(model.items), idx, scores)


def category_popular(
    events: pd.DataFrame, videos: pd.DataFrame, end_epoch_s: int, window_days: int, k: int
) -> dict[str, tuple[list[str], list[float]]]:
    """``popular_items`` within each category that has events (categories are the videos' own)."""
    cat = videos.set_index("video_id")["category"].fillna("") if "category" in videos else pd.Series(dtype=str)
    labelled = events.assign(category=events["video_id"].map(cat).fillna(""))
    return {
        str(c): popular_items(group, end_epoch_s, window_days, k)
        for c, group in labelled.groupby("category")
        if c and keys_safe(str(c))
    }


def keys_safe(part: str) -> bool:
    """A category can be part of a key when it has no control characters and is not too long."""
    return 0 < len(part.encode()) <= 200 and all(ch.isprintable() for ch in part)


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


def gate_decision(
    new_report: dict | None,  # type: ignore[type-arg]
    live_report: dict | None,  # type: ignore[type-arg]
    metric: str,
    tolerance: float,
) -> tuple[bool, str]:
    """(publish?, why): a model worse than the live one on ``metric`` by more than ``tolerance``
    (same protocol) is held back; without comparable numbers the new model goes out."""
    if new_report is None:
        return True, "no evaluation report for the new model: published ungated"
    if live_report is None:
        return True, "no live model with a report to compare against"
    if live_report.get("protocol") != new_report.get("protocol"):
        return True, f"live model was evaluated under {live_report.get('protocol')}, not {new_report.get('protocol')}"
    new = new_report["metrics"]["two_tower"][metric]
    live = live_report["metrics"]["two_tower"][metric]
    if new < live - tolerance:
        return False, f"{metric} {new:.4f} is below the live model's {live:.4f} (tolerance {tolerance}); not published"
    return True, f"{metric} {new:.4f} vs live {live:.4f}"


def _live_report(cfg: PipelineConfig, client) -> tuple[str | None, dict | None]:  # type: ignore[type-arg]
    raw = client.get(keys.live_key(cfg.namespace))
    live = raw.decode() if raw else None
    path = cfg.model_dir(live) / "metrics.json" if live else None
    return live, json.loads(path.read_text()) if path is not None and path.exists() else None


def _gate(cfg: PipelineConfig, model: artifacts.ExportedModel, gate: bool) -> tuple[bool, str, str | None]:
    """(publish?, why, the live version) for ``model`` against the live one."""
    client = connect(cfg.redis_url)
    try:
        live, live_report = _live_report(cfg, client)
    finally:
        client.close()
    if not gate or live == model.version:
        return True, "gate off", live
    report = model.path / "metrics.json"
    new_report = json.loads(report.read_text()) if report.exists() else None
    return (*gate_decision(new_report, live_report, cfg.gate_metric, cfg.gate_tolerance), live)


def _shard_dir(cfg: PipelineConfig, run_date: str, version: str) -> Path:
    return cfg.partition(run_date, "publish") / f"shards-{version}"


def _shard_name(shard: int, shards: int) -> str:
    return f"shard-{shard:05d}-of-{shards:05d}"


def write_shard(
    cfg: PipelineConfig,
    run_date: str,
    model: artifacts.ExportedModel,
    shard: int,
    shards: int,
    source: ingest.ValidatedSource | None = None,
) -> dict[str, object]:
    """Score and write the lists of one shard's users under ``model.version`` (not live yet), then
    its manifest and what each list left out. A retry writes the same bytes."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    source = source or ingest.load(cfg, run_date)
    unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
    topk, active, exclude = score_users(
        model, source.events, cfg.topk, unplayable, cfg.ann_min_items, shard=(shard, shards)
    )
    client = connect(cfg.redis_url)
    try:
        written = write_lists(client, cfg.namespace, model.version, topk, cfg.ttl_seconds)
    finally:
        client.close()
    folder = _shard_dir(cfg, run_date, model.version)
    folder.mkdir(parents=True, exist_ok=True)
    save_excluded(folder / f"{_shard_name(shard, shards)}.npz", active, exclude)
    manifest = {"version": model.version, "shard": shard, "shards": shards, **written}
    write_json(folder / f"{_shard_name(shard, shards)}.json", manifest)
    return manifest


def finish(
    cfg: PipelineConfig,
    run_date: str,
    model: artifacts.ExportedModel,
    shards: int,
    reason: str,
    source: ingest.ValidatedSource | None = None,
) -> dict[str, object]:
    """After every shard: check their manifests and every user's key, write the similar, popular
    and category lists, flip the live pointer (``cache.writer.publish_version``) and keep what the
    lists left out beside the model. Raises PublishError, the previous version still live, when a
    shard is missing."""
    t0 = time.perf_counter()
    folder = _shard_dir(cfg, run_date, model.version)
    parts = []
    for shard in range(shards):
        name = folder / _shard_name(shard, shards)
        manifest = json.loads(name.with_suffix(".json").read_text()) if name.with_suffix(".json").exists() else None
        if manifest is None or manifest["version"] != model.version:
            raise PublishError(f"publish shard {shard} of {shards} did not finish for {model.version}; not flipped")
        parts.append((manifest, *load_excluded(name.with_suffix(".npz"))))
    users = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    exclude = [e for p in parts for e in p[2]]
    order = np.argsort(users, kind="stable")
    source = source or ingest.load(cfg, run_date)
    unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
    similar = similar_items(model, cfg.similar_k, unplayable, cfg.ann_min_items)
    playable = source.events[~source.events["video_id"].isin(unplayable)]
    end = run_date_end_epoch_s(run_date)
    written = Written([model.users[int(a)] for a in users[order]], sum(int(p[0]["bytes"]) for p in parts))
    client = connect(cfg.redis_url)
    try:
        meta = publish_version(
            client, cfg.namespace, model.version, written,
            popular_items(playable, end, cfg.popular_window_days, cfg.topk), cfg.ttl_seconds, similar=similar,
            by_category=category_popular(playable, source.videos, end, cfg.popular_window_days, cfg.topk),
            grace_seconds=cfg.version_grace_seconds,
        )  # fmt: skip
    finally:
        client.close()
    save_excluded(model.path / EXCLUDED_FILE, users[order], [exclude[i] for i in order])
    record_live(cfg, model.version, run_date)
    return {**meta, "published": True, "reason": reason, "namespace": cfg.namespace, "shards": shards,
            "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip


def publish_model(
    cfg: PipelineConfig, run_date: str, model: artifacts.ExportedModel, gate: bool = True
) -> dict[str, object]:
    """Score and publish one exported model with the run date's events, its shards one after the
    other in this process; gated on its metrics."""
    t0 = time.perf_counter()
    ok, why, live = _gate(cfg, model, gate)
    if not ok:
        log.warning("publish %s held back: %s", model.version, why)
        return {"version": model.version, "published": False, "reason": why, "live_version": live}
    storage.remove_tree(_shard_dir(cfg, run_date, model.version))
    source = ingest.load(cfg, run_date)
    for shard in range(cfg.publish_shards):
        write_shard(cfg, run_date, model, shard, cfg.publish_shards, source)
    summary = finish(cfg, run_date, model, cfg.publish_shards, why, source)
    return {**summary, "seconds": round(time.perf_counter() - t0, 2)}


POPULAR_ONLY_PREFIX = "popular-"  # versions published without a model (a trained one replaces them)


def newest_items(videos: pd.DataFrame, k: int) -> tuple[list[str], list[float]]:
    """Day zero's popular list: the newest videos by ``published_at`` (unknown dates last, then by
    id); score 0 (nothing has been watched)."""
    order = videos.assign(p=pd.to_numeric(videos.get("published_at"), errors="coerce")).sort_values(
        ["p", "video_id"], ascending=[False, True], na_position="last", kind="stable"
    )
    ids = order["video_id"].head(k).tolist()
    return ids, [0.0] * len(ids)


def live_record_path(cfg: PipelineConfig) -> Path:
    return cfg.workdir / "live" / f"{cfg.namespace}.json"


def record_live(cfg: PipelineConfig, version: str, run_date: str) -> None:
    """Remember, outside Redis, which version this workdir last made live in the namespace (and
    whose events it scored): what to republish when Redis loses its data."""
    write_json(live_record_path(cfg), {"version": version, "run_date": run_date, "at": time.time()})


def recorded_live(cfg: PipelineConfig) -> dict[str, object] | None:
    path = live_record_path(cfg)
    return json.loads(path.read_text()) if path.exists() else None


def run_date_of_version(version: str) -> str:
    """``20261128-1a2b3c4d`` or ``popular-20261128`` -> ``2026-11-28`` (the run that exported it)."""
    digits = version.removeprefix(POPULAR_ONLY_PREFIX)[:8]
    if not (len(digits) == 8 and digits.isdigit()):
        raise ValueError(f"{version!r} is not a version id (YYYYMMDD-<digest> or {POPULAR_ONLY_PREFIX}YYYYMMDD)")
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def republish(cfg: PipelineConfig, version: str, run_date: str | None = None) -> dict[str, object]:
    """Publish an exported version again from its model folder (ungated: a deliberate choice), with
    the events of ``run_date`` (default: the run that exported it; its ingest partition must still
    be in the workdir). The same version, folder and events give the same bytes in Redis."""
    run_date = run_date or run_date_of_version(version)
    if version.startswith(POPULAR_ONLY_PREFIX):
        return publish_without_model(cfg, run_date, f"republished {version}", replace_live=True)
    return publish_model(cfg, run_date, artifacts.load_model_version(cfg, version), gate=False)


def live_lost(cfg: PipelineConfig) -> str | None:
    """The version this workdir last made live, when Redis no longer holds it live (its pointer or
    its metadata is gone: a restart without persistence, a failover to an empty replica)."""

    record = recorded_live(cfg)
    if record is None:
        return None
    client = connect(cfg.redis_url)
    try:
        live = client.get(keys.live_key(cfg.namespace))
        if live is None or not client.exists(keys.meta_key(cfg.namespace, live.decode())):
            return str(record["version"])
        return None
    finally:
        client.close()


def publish_without_model(
    cfg: PipelineConfig, run_date: str, reason: str, replace_live: bool = False
) -> dict[str, object]:
    """A night without a model (``artifacts.NoModel``): when nothing is live yet, publish a version with
    no user lists whose popular and category lists come from the events (or, with none, the newest
    videos), so every user gets a degraded-but-real answer from day one. A live trained version is
    kept; a live popular-only one is replaced (its lists are a day older)."""

    client = connect(cfg.redis_url)
    try:
        raw = client.get(keys.live_key(cfg.namespace))
        if raw and not replace_live and not raw.startswith(POPULAR_ONLY_PREFIX.encode()):  # a model stays live
            return {"version": None, "published": False, "live_version": raw.decode(),
                    "reason": f"no model tonight ({reason}); the live version stays"}  # fmt: skip
        source = ingest.load(cfg, run_date)
        unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
        playable = source.events[~source.events["video_id"].isin(unplayable)]
        videos = source.videos[~source.videos["video_id"].isin(unplayable)]
        end = run_date_end_epoch_s(run_date)
        if len(playable):
            popular = popular_items(playable, end, cfg.popular_window_days, cfg.topk)
            by_category = category_popular(playable, videos, end, cfg.popular_window_days, cfg.topk)
        else:
            popular = newest_items(videos, cfg.topk)
            by_category = {
                str(c): newest_items(group, cfg.topk)
                for c, group in videos.groupby("category")
                if c and keys_safe(str(c))
            }
        version = f"{POPULAR_ONLY_PREFIX}{run_date.replace('-', '')}"
        meta = publish_version(
            client, cfg.namespace, version, TopK([], [], []), popular, cfg.ttl_seconds,
            by_category=by_category, grace_seconds=cfg.version_grace_seconds,
        )  # fmt: skip
    finally:
        client.close()
    record_live(cfg, version, run_date)
    return {**meta, "published": True, "namespace": cfg.namespace,
            "reason": f"no model tonight ({reason}): popular-only version"}  # fmt: skip


def _restore_lost(cfg: PipelineConfig) -> dict[str, object] | None:
    """Republish the version this workdir last made live when Redis lost it (None when it did not)."""
    if (lost := live_lost(cfg)) is None:
        return None
    # First bring back what was live (the gate compares against it and may hold the new model
    # back; without this, Redis would stay empty until a model passes the gate).
    log.warning("Redis lost live version %s of %s: republishing it", lost, cfg.namespace)
    try:
        restored = republish(cfg, lost)
    except (FileNotFoundError, ValueError, PublishError) as exc:  # e.g. its partition was cleaned up
        log.error("cannot republish %s (%s); publishing tonight's version ungated by it", lost, exc)
        restored = {"version": lost, "published": False, "error": str(exc)}
    return {k: restored[k] for k in ("version", "keys", "published", "error") if k in restored}


def _plan_path(cfg: PipelineConfig, run_date: str) -> Path:
    return cfg.partition(run_date, "publish") / "plan.json"


def plan(cfg: PipelineConfig, run_date: str, gate: bool = True) -> dict[str, object]:
    """What tonight publishes, decided once before the shards run (``plan.json``): ``shards`` (the
    model passed the gate: shards write its lists), or ``done`` (no model: a popular-only version
    was published or the live one kept; or the gate held the model back). A lost live version is
    republished first."""
    restored = _restore_lost(cfg)
    try:
        model = artifacts.load_model(cfg, run_date)
    except artifacts.NoModel as exc:
        out: dict[str, object] = {"mode": "done", "summary": publish_without_model(cfg, run_date, str(exc))}
    else:
        ok, why, live = _gate(cfg, model, gate and cfg.publish_gate)
        if ok:
            storage.remove_tree(_shard_dir(cfg, run_date, model.version))
            out = {"mode": "shards", "version": model.version, "shards": cfg.publish_shards, "reason": why}
        else:
            log.warning("publish %s held back: %s", model.version, why)
            held = {"version": model.version, "published": False, "reason": why, "live_version": live}
            out = {"mode": "done", "summary": held}
    out["restored_live"] = restored
    write_json(_plan_path(cfg, run_date), out)
    return out


def _read_plan(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    path = _plan_path(cfg, run_date)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the publish plan task must run before the shards")
    return json.loads(path.read_text())


def run_shard(cfg: PipelineConfig, run_date: str, shard: int) -> dict[str, object]:
    """One planned shard (an Airflow mapped task); nothing to do when the plan publishes no model."""
    p = _read_plan(cfg, run_date)
    if p["mode"] != "shards":
        return {"shard": shard, "skipped": "no model to publish tonight"}
    model = artifacts.load_model_version(cfg, str(p["version"]))
    return write_shard(cfg, run_date, model, shard, int(p["shards"]))  # type: ignore[call-overload]


def finish_plan(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    """After the shards: flip to the planned version (``finish``), or report what the plan did."""
    p = _read_plan(cfg, run_date)
    if p["mode"] == "shards":
        model = artifacts.load_model_version(cfg, str(p["version"]))
        summary = finish(cfg, run_date, model, int(p["shards"]), str(p["reason"]))  # type: ignore[call-overload]
    else:
        summary = dict(p["summary"])  # type: ignore[call-overload]
    if p.get("restored_live") is not None:
        summary["restored_live"] = p["restored_live"]
    write_json(cfg.partition(run_date, "publish") / "summary.json", summary)
    log.info("publish %s: %s", run_date, summary)
    return summary


def run(cfg: PipelineConfig, run_date: str, gate: bool = True) -> dict[str, object]:
    """The nightly publish step in one process: ``plan``, every shard, ``finish_plan``."""
    p = plan(cfg, run_date, gate)
    if p["mode"] == "shards":
        for shard in range(int(p["shards"])):  # type: ignore[call-overload]
            run_shard(cfg, run_date, shard)
    return finish_plan(cfg, run_date)
