import numpy as np
import pandas as pd
import pytest

from recsys.contract import parse_timestamps, validate_source


def _tables():
    videos = pd.DataFrame(
        {
            "video_id": ["a", "b", "b", "bad id", None],
            "title": ["A", None, "dup", "x", "y"],
        }
    )
    comments = pd.DataFrame({"video_id": ["a", "a", "zzz"], "text": ["nice", "   ", "orphan"]})
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u 2", "u3", "u4"],
            "video_id": ["a", "b", "a", "nope", "a"],
            "ts": [100, "1970-01-01T00:03:20Z", 50, 60, "yesterday"],
        }
    )
    return videos, comments, events


def test_valid_rows_pass_and_bad_rows_are_quarantined_with_reasons():
    src = validate_source(*_tables())
    assert src.videos["video_id"].tolist() == ["a", "b"]
    assert src.videos.loc[1, "title"] == ""  # a missing title is allowed, as empty text
    assert src.comments["text"].tolist() == ["nice"]
    assert src.events[["user_id", "video_id", "ts"]].values.tolist() == [["u1", "a", 100], ["u1", "b", 200]]
    reasons = sorted(zip(src.quarantine["table"], src.quarantine["reason"], strict=True))
    assert reasons == [
        ("comments", "empty comment text"),
        ("comments", "unknown video_id"),
        ("events", "invalid user_id"),
        ("events", "unknown video_id"),
        ("events", "unparseable ts"),
        ("videos", "duplicate video_id"),
        ("videos", "invalid video_id"),
        ("videos", "invalid video_id"),
    ]
    # Nothing silently dropped: every input row is either valid or quarantined.
    assert len(src.videos) + (src.quarantine["table"] == "videos").sum() == 5
    assert len(src.events) + (src.quarantine["table"] == "events").sum() == 5
    assert src.summary()["quarantined"] == 8


def test_optional_event_columns_are_kept_and_checked():
    videos = pd.DataFrame({"video_id": ["a"], "title": ["A"]})
    events = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3"], "video_id": ["a"] * 3, "ts": [1, 2, 3], "completion": [0.5, 1.5, None]}
    )
    src = validate_source(videos, pd.DataFrame(columns=["video_id", "text"]), events)
    assert src.events["completion"].tolist()[0] == 0.5 and pd.isna(src.events["completion"].tolist()[1])
    assert src.quarantine["reason"].tolist() == ["completion outside 0..1"]


def test_missing_required_column_is_a_clear_error():
    videos, comments, events = _tables()
    with pytest.raises(ValueError, match=r"events table lacks required column\(s\) \['ts'\]"):
        validate_source(videos, comments, events.drop(columns=["ts"]))


def test_timestamps_seconds_milliseconds_and_iso():
    got = parse_timestamps(pd.Series([1_700_000_000, 1_700_000_000_000, "2023-11-14T22:13:20Z", "junk"]))
    assert got[:3].tolist() == [1_700_000_000.0] * 3
    assert pd.isna(got[3])


def test_completion_derived_from_watch_seconds_where_missing():
    from pipelines.ingest import derive_completion

    videos = pd.DataFrame({"video_id": ["a", "b", "c"], "duration_s": [10.0, np.nan, 0.0]})
    events = pd.DataFrame(
        {
            "user_id": ["u"] * 5,
            "video_id": ["a", "a", "a", "b", "c"],
            "watch_seconds": [5.0, 30.0, 2.0, 4.0, 4.0],
            "completion": [np.nan, np.nan, 0.9, np.nan, np.nan],
        }
    )
    out = derive_completion(events, videos)
    # 5/10; 30/10 clipped to 1; a given completion wins; unknown or zero duration stays unknown
    assert out["completion"].tolist()[:3] == [0.5, 1.0, 0.9]
    assert out["completion"].iloc[3:].isna().all()
    # no watch_seconds column: the events come back untouched
    assert derive_completion(events.drop(columns="watch_seconds"), videos) is not None


def test_header_only_events_table_ingests_to_no_events(tmp_path):
    """An events.csv with a header and no rows (a new service on day one), read as ingest reads it."""
    from pipelines.ingest import ingest_tables, read_table

    (tmp_path / "videos.csv").write_text("video_id,title,duration_s\nv1,a clip,30\n")
    (tmp_path / "events.csv").write_text("user_id,video_id,ts,watch_seconds\n")
    tables = [read_table(tmp_path, n) for n in ("videos", "comments", "events")]
    out = ingest_tables(*tables, tmp_path, 2_000_000_000)
    assert len(out.events) == 0 and out.events["completion"].dtype == np.float64
    assert out.summary() == {"videos": 1, "comments": 0, "events": 0, "quarantined": 0}


def test_the_api_checks_ids_with_the_contracts_pattern():
    """serving/schemas.py repeats the pattern (recsys.contract imports pandas, the API must not)."""
    from recsys.contract import ID_PATTERN
    from serving.schemas import ID_REGEX

    assert ID_REGEX == ID_PATTERN.pattern
