"""ingest: read the three contract tables, validate them, quarantine bad rows, write one partition."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pipelines import storage
from pipelines.config import PipelineConfig, run_date_end_epoch_s
from pipelines.storage import write_json, write_parquet
from recsys.contract import REQUIRED_COLUMNS, ValidatedSource, validate_source

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The data source cannot be read at all (missing folder or table, unreadable file)."""


def read_table(source: Path, name: str) -> pd.DataFrame:
    """Read ``name``.parquet or ``name``.csv from a data-contract folder; ids are kept as strings."""
    parquet, csv = source / f"{name}.parquet", source / f"{name}.csv"
    try:
        if parquet.exists():
            return storage.read_parquet(parquet)
        if csv.exists():
            id_cols = dict.fromkeys(("video_id", "user_id", "comment_id"), str)
            # Bytes that are not UTF-8 become U+FFFD instead of failing the whole table.
            return pd.read_csv(csv, dtype=id_cols, keep_default_na=False, na_values=[""], encoding_errors="replace")
    except Exception as exc:  # pandas raises many types for unreadable files
        raise SourceError(f"cannot read {name} table in {source}: {exc}") from exc
    if name == "comments":  # comments are optional: a source without them is valid
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS["comments"]))
    raise SourceError(f"no {name}.csv or {name}.parquet in {source}")


def ingest_tables(
    videos: pd.DataFrame, comments: pd.DataFrame, events: pd.DataFrame, source: Path, end_epoch_s: int
) -> ValidatedSource:
    """Validate; resolve media paths against the source folder; keep events known by the run date."""
    validated = validate_source(videos, comments, events)
    v = validated.videos.copy()
    v["media_file"] = v["media_path"].map(lambda p: str((source / p).resolve()) if p else "")
    e = validated.events[validated.events["ts"] < end_epoch_s].reset_index(drop=True)
    e = derive_completion(e, v)
    return ValidatedSource(videos=v, comments=validated.comments, events=e, quarantine=validated.quarantine)


def derive_completion(events: pd.DataFrame, videos: pd.DataFrame) -> pd.DataFrame:
    """Fill a missing ``completion`` with watch_seconds / the video's duration_s, clipped to 0..1.

    A given completion always wins; where neither is known it stays NaN (treated as a full watch).
    """
    if "watch_seconds" not in events or "duration_s" not in videos:
        return events
    duration = pd.to_numeric(videos.set_index("video_id")["duration_s"], errors="coerce")
    duration = duration[duration > 0]
    watched = pd.to_numeric(events["watch_seconds"], errors="coerce").astype("float64")
    # astype: mapping an empty str column keeps the str dtype (day one: no events yet)
    derived = (watched / events["video_id"].map(duration).astype("float64")).clip(0.0, 1.0)
    given = events["completion"] if "completion" in events else pd.Series(float("nan"), index=events.index)
    return events.assign(completion=given.fillna(derived).astype("float64"))


def run(cfg: PipelineConfig, run_date: str) -> dict[str, int]:
    if not cfg.source.is_dir():
        raise SourceError(f"data source {cfg.source} is not a folder")
    tables = {name: read_table(cfg.source, name) for name in ("videos", "comments", "events")}
    result = ingest_tables(
        tables["videos"], tables["comments"], tables["events"], cfg.source.resolve(), run_date_end_epoch_s(run_date)
    )
    result, landed = with_landed_events(cfg, run_date, result)
    out = cfg.partition(run_date, "ingest")
    write_parquet(out / "videos.parquet", result.videos)
    write_parquet(out / "comments.parquet", result.comments)
    write_parquet(out / "events.parquet", result.events)
    write_parquet(out / "quarantine.parquet", result.quarantine.astype(str))
    summary = {**result.summary(), **landed}
    write_json(out / "summary.json", summary)
    for _, row in result.quarantine.iterrows():
        log.warning("quarantined %s row %s (%s): %s", row["table"], row["row"], row["key"], row["reason"])
    log.info("ingest %s: %s", run_date, summary)
    return summary


def with_landed_events(
    cfg: PipelineConfig, run_date: str, source: ValidatedSource
) -> tuple[ValidatedSource, dict[str, object]]:
    """The source's events and the events posted to the API (landed now when ``cfg.land_events``,
    and before), each event once: by ``event_id`` where it has one, else by all its fields."""
    from pipelines import landing

    counts: dict[str, object] = {}
    if cfg.land_events:
        try:
            got = landing.land_stream(cfg, set(source.videos["video_id"]))
            counts.update({f"stream_{k}": v for k, v in got.items()})
        except Exception as exc:  # Redis down or unreachable: train on what was landed before
            log.warning("events stream not landed (%s: %s); using the events landed before", type(exc).__name__, exc)
            counts["stream_error"] = f"{type(exc).__name__}: {exc}"
    landed = landing.load_landed(cfg, run_date_end_epoch_s(run_date))
    if landed.empty:
        return source, counts
    known = landed["video_id"].isin(set(source.videos["video_id"]))
    counts["landed_events"], counts["landed_unknown_video"] = int(known.sum()), int((~known).sum())
    both = pd.concat([source.events, derive_completion(landed[known], source.videos)], ignore_index=True)
    with_id = both[both["event_id"] != ""].drop_duplicates("event_id")
    without_id = both[both["event_id"] == ""]
    events = pd.concat([with_id, without_id]).drop_duplicates(["user_id", "video_id", "ts", "event"])
    events = events.sort_values(["ts", "user_id", "video_id"], kind="stable").reset_index(drop=True)
    return ValidatedSource(source.videos, source.comments, events, source.quarantine), counts


def load(cfg: PipelineConfig, run_date: str) -> ValidatedSource:
    """The ingest partition of a run date, as written by ``run``."""
    part = cfg.partition(run_date, "ingest")
    if not (part / "summary.json").exists():
        raise FileNotFoundError(f"no ingest output for {run_date} under {part}; run the ingest step first")
    return ValidatedSource(
        videos=storage.read_parquet(part / "videos.parquet"),
        comments=storage.read_parquet(part / "comments.parquet"),
        events=storage.read_parquet(part / "events.parquet"),
        quarantine=storage.read_parquet(part / "quarantine.parquet"),
    )
