"""Events posted to the API, landed for training exactly once.

``POST /v1/events`` appends each event to the stream ``vidrec:{ns}:events``. ``land_stream``
reads it through the consumer group ``vidrec-ingest`` and, per batch of entries:

1. validates the events with the data contract (``recsys.contract.validate_events``; the stream
   entry id becomes the event's ``event_id``); bad ones go to ``<workdir>/events/quarantine/``
   with the reason;
2. writes the valid ones as Parquet under ``<workdir>/events/date=YYYY-MM-DD/`` (the day of each
   event's ``ts``, UTC), one file per batch named by the batch's first and last entry ids,
   written to a temporary file, flushed to disk and renamed;
3. only then acknowledges the batch (``XACK``).

A crash between 2 and 3 leaves the batch pending in the group: the next run reads this consumer's
pending entries first (``XREADGROUP ... 0``), lands them again under the same file names, and
acknowledges them. Readers (``load_landed``) drop duplicate ``event_id``s, so an event landed twice
under different batch boundaries still counts once.

Trimming: the API caps the stream with ``XADD MAXLEN ~ events_stream_maxlen`` (memory safety:
events beyond it between two landings are lost, so size it above the events of a day). Landing
trims what every consumer group has acknowledged (``XTRIM MINID`` at the oldest entry some group
still needs: its oldest pending entry, else the entry after its last delivered one), never an
entry a group has not acknowledged. The summary reports the group's lag.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cache import keys
from pipelines import storage
from pipelines.config import PipelineConfig
from recsys.contract import validate_events

log = logging.getLogger(__name__)

GROUP = "vidrec-ingest"
CONSUMER = "ingest"  # one nightly ingest at a time: one consumer, whose pending entries it owns
BATCH = 10_000


def landed_dir(cfg: PipelineConfig) -> Path:
    return cfg.workdir / "events"


def _stream_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _durable_parquet(path: Path, df: pd.DataFrame) -> None:
    """Write, flush to disk, rename, flush the folder: after this returns the file survives a crash.
    On object storage one upload (acknowledged means stored)."""
    if storage.is_remote(path):
        storage.write_parquet(path, df)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def land_batch(cfg: PipelineConfig, entries: list[tuple[bytes, dict[bytes, bytes]]], video_ids: set[str]) -> dict:  # type: ignore[type-arg]
    """Validate one batch of stream entries and write it (not yet acknowledged); returns counts."""
    names = {b"user_id", b"video_id", b"ts"}.union(*(fields.keys() for _, fields in entries))
    raw = pd.DataFrame(  # a malformed entry may lack a field: None, then quarantined, not lost
        {n.decode(): [f[n].decode() if n in f else None for _, f in entries] for n in names}
        | {"event_id": [sid.decode() for sid, _ in entries]},
        dtype=object,  # plain strings: no per-column Arrow string inference
    )
    valid, quarantine = validate_events(raw, video_ids)
    name = f"part-{entries[0][0].decode()}-{entries[-1][0].decode()}.parquet"
    day_index = valid["ts"].to_numpy() // 86400  # UTC days since the epoch
    for day_number in np.unique(day_index):
        day = (dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))).isoformat()
        part = valid[day_index == day_number]
        _durable_parquet(landed_dir(cfg) / f"date={day}" / name, part.reset_index(drop=True))
    if len(quarantine):
        _durable_parquet(landed_dir(cfg) / "quarantine" / name, quarantine.astype(str))
        for _, row in quarantine.iterrows():
            log.warning("quarantined posted event %s: %s", row["raw"], row["reason"])
    return {"landed": len(valid), "quarantined": len(quarantine)}


def ack(client, stream: str, ids: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    client.xack(stream, GROUP, *ids)


def land_stream(cfg: PipelineConfig, video_ids: set[str], batch: int = BATCH) -> dict[str, object]:
    """Land every event in the stream not yet acknowledged by the group; see the module doc."""
    import redis

    from cache.writer import connect

    client = connect(cfg.redis_url)
    stream = keys.events_stream_key(cfg.namespace)
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    counts = {"read": 0, "landed": 0, "quarantined": 0, "redelivered": 0}
    # This consumer's pending entries first (landed or not before a crash), then new ones.
    for start in ("0", ">"):
        after = start
        while True:
            reply = client.xreadgroup(GROUP, CONSUMER, {stream: after}, count=batch)
            delivered = reply[0][1] if reply else []
            if not delivered:
                break
            # A pending entry trimmed since it was delivered comes back without fields: nothing to land.
            entries = [(sid, fields) for sid, fields in delivered if fields]
            got = land_batch(cfg, entries, video_ids) if entries else {"landed": 0, "quarantined": 0}
            ack(client, stream, [sid for sid, _ in delivered])
            counts["read"] += len(entries)
            counts["redelivered"] += len(entries) if start == "0" else 0
            counts["landed"] += got["landed"]
            counts["quarantined"] += got["quarantined"]
            after = delivered[-1][0].decode() if start == "0" else ">"
    counts.update(trim_acknowledged(client, stream))
    client.close()
    log.info("landed the events stream %s: %s", stream, counts)
    return counts


def trim_acknowledged(client, stream: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """XTRIM MINID at the oldest entry some consumer group still needs; returns what was done."""
    bounds = []
    lag = None
    for group in client.xinfo_groups(stream):
        name = group["name"]
        if group["pending"]:
            bounds.append(_stream_id(client.xpending(stream, name)["min"]))
        else:  # everything delivered is acknowledged: keep the entries after the last delivered
            ms, seq = _stream_id(group["last-delivered-id"])
            bounds.append((ms, seq + 1))
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            lag = group.get("lag")
    if not bounds:
        return {"trimmed": 0, "lag": lag}
    ms, seq = min(bounds)
    return {"trimmed": int(client.xtrim(stream, minid=f"{ms}-{seq}")), "lag": lag}


def load_landed(cfg: PipelineConfig, end_epoch_s: int) -> pd.DataFrame:
    """Every landed event before ``end_epoch_s``, each ``event_id`` once (empty: no file yet)."""
    last_day = dt.datetime.fromtimestamp(end_epoch_s, dt.UTC).strftime("%Y-%m-%d")
    files = sorted(
        f
        for d in landed_dir(cfg).glob("date=*")
        if d.name.removeprefix("date=") <= last_day
        for f in d.glob("part-*.parquet")
    )
    if not files:
        return pd.DataFrame()
    events = pd.concat([storage.read_parquet(f) for f in files], ignore_index=True)
    events = events[events["ts"] < end_epoch_s]
    return events.drop_duplicates("event_id", keep="first").reset_index(drop=True)


def online_report(cfg: PipelineConfig, since: str, until: str | None = None) -> dict[str, object]:
    """Watches landed from ``since`` to ``until`` (YYYY-MM-DD, inclusive), and per model version
    the watches of videos it had recommended (the events' ``recommended_by``), by answer source,
    with their share of all watches in the days that version had any (its recommended-watch
    rate). The served-item side (watched / items served) is on the API's /metrics
    (``vidrec_recommended_watches`` / ``vidrec_served_items``)."""
    days = sorted(
        d for d in landed_dir(cfg).glob("date=*") if since <= d.name.removeprefix("date=") <= (until or "9999-99-99")
    )
    files = [f for d in days for f in sorted(d.glob("part-*.parquet"))]
    if not files:
        return {"since": since, "until": until, "watches": 0, "versions": []}
    events = pd.concat([storage.read_parquet(f) for f in files], ignore_index=True).drop_duplicates("event_id")
    events["day"] = pd.to_datetime(events["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
    attributed = events[events.get("recommended_version", pd.Series("", index=events.index)).fillna("") != ""]
    rows = []
    for version, group in attributed.groupby("recommended_version"):
        in_days = events[events["day"].isin(set(group["day"]))]
        rows.append(
            {
                "version": version,
                "recommended_watches": len(group),
                "by_source": {str(k): int(v) for k, v in group["recommended_source"].value_counts().items()},
                "watches_those_days": len(in_days),
                "recommended_watch_rate": round(len(group) / max(len(in_days), 1), 4),
                "days": sorted(set(group["day"])),
            }
        )
    return {"since": since, "until": until, "watches": len(events), "versions": rows}
