"""Adapters, each on a tiny file written here in the real format, then through validation."""

import pandas as pd
import pytest

from pipelines.adapters import import_source, movielens_tables
from recsys.contract import validate_source
from tests.conftest import shared_file


def test_movielens_latest_format(tmp_path):
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"Heat, The (1995)",(no genres listed)\n'
    )
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,5.0,964981247\n")
    (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n")
    videos, comments, events = movielens_tables(tmp_path)
    assert videos.to_dict("records")[1] == {"video_id": "m2", "title": "Heat, The (1995)", "tags": "", "category": ""}
    assert videos.loc[0, "category"] == "Adventure" and videos.loc[0, "tags"] == "Adventure|Animation"
    assert events[["user_id", "video_id", "ts"]].values.tolist() == [["u1", "m1", 964982703], ["u1", "m2", 964981247]]
    assert events["completion"].tolist() == [0.8, 1.0]
    assert comments[["video_id", "text"]].values.tolist() == [["m1", "pixar"]]
    src = validate_source(videos, comments, events)
    assert src.quarantine.empty and len(src.events) == 2


def test_movielens_100k_format(tmp_path):
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags = ["0"] * 19
    flags[5] = "1"  # Comedy
    (tmp_path / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags) + "\n").encode("latin-1")
        + ("302|L.A. Confidential (1997)|01-Jan-1997||http://y|" + "|".join(["0"] * 19) + "\n").encode("latin-1")
    )
    videos, comments, events = movielens_tables(tmp_path)
    assert videos["video_id"].tolist() == ["m242", "m302"]
    assert videos.loc[0, "category"] == "Comedy" and videos.loc[0, "published_at"] == "1997-01-24T00:00:00Z"
    assert events["user_id"].tolist() == ["u196", "u186"] and comments.empty
    assert validate_source(videos, comments, events).quarantine.empty


def test_unknown_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MovieLens formats"):
        movielens_tables(tmp_path)
    with pytest.raises(ValueError, match="unknown format"):
        import_source("netflix", tmp_path, tmp_path / "out")


def test_real_movielens_latest_small_imports(tmp_path):
    path = shared_file("movielens-latest-small")
    summary = import_source("movielens", path, tmp_path / "ml")
    assert summary == {"videos": 9742, "comments": 3683, "events": 100836}
    src = validate_source(
        *(pd.read_parquet(tmp_path / "ml" / f"{t}.parquet") for t in ("videos", "comments", "events"))
    )
    assert len(src.events) == 100836 and src.events["user_id"].nunique() == 610


def test_generic_csv_with_a_column_mapping(tmp_path):
    from pipelines.adapters import parse_mapping

    (tmp_path / "videos.csv").write_text("item,name\nv1,First\nv2,Second\n")
    (tmp_path / "events.csv").write_text("uid,item,when\nalice,v1,2026-01-01T10:00:00Z\nbob,v2,1767261600\n")
    mapping = parse_mapping(
        ["videos.video_id=item", "videos.title=name", "events.user_id=uid", "events.video_id=item", "events.ts=when"]
    )
    assert mapping["events"] == {"user_id": "uid", "video_id": "item", "ts": "when"}
    summary = import_source("csv", tmp_path, tmp_path / "out", mapping)
    assert summary == {"videos": 2, "comments": 0, "events": 2}
    src = validate_source(
        *(pd.read_parquet(tmp_path / "out" / f"{t}.parquet") for t in ("videos", "comments", "events"))
    )
    assert src.quarantine.empty and sorted(src.events["ts"]) == [1767261600, 1767261600]
    with pytest.raises(ValueError, match=r"has no column\(s\) \['userid'\]"):
        import_source("csv", tmp_path, tmp_path / "o2", parse_mapping(["events.user_id=userid"]))
    with pytest.raises(ValueError, match="must look like"):
        parse_mapping(["user_id=uid"])
