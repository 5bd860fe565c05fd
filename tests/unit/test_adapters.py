"""Adapters, each on a tiny file written here in the real format, then through validation."""

import pandas as pd
import pytest

from pipelines.adapters import import_source, kuairec_tables, movielens_tables
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


def test_microlens_format(tmp_path):
    (tmp_path / "MicroLens-50k_pairs.csv").write_text(
        "user,item,timestamp\n1,101,1675849836000\n1,102,1675849937000\n2,101,1676000000000\n"
    )
    (tmp_path / "MicroLens-50k_titles.csv").write_text('item,title\n101,"Cats, in 4K"\n102,\n103,never watched\n')
    (tmp_path / "MicroLens-50k_videos").mkdir()
    (tmp_path / "MicroLens-50k_videos" / "101.mp4").write_bytes(b"not really a video")
    out = tmp_path / "source"
    summary = import_source("microlens", tmp_path, out)
    assert summary == {"videos": 3, "comments": 0, "events": 3}
    videos = pd.read_parquet(out / "videos.parquet").set_index("video_id")
    assert videos.loc["i101", "title"] == "Cats, in 4K" and videos.loc["i102", "title"] == ""
    # the media path is rewritten relative to the new source folder and still points at the file
    assert (out / videos.loc["i101", "media_path"]).resolve() == (tmp_path / "MicroLens-50k_videos" / "101.mp4")
    assert videos.loc["i103", "media_path"] == ""  # text-only item
    events = pd.read_parquet(out / "events.parquet")
    src = validate_source(videos.reset_index(), pd.read_parquet(out / "comments.parquet"), events)
    assert src.quarantine.empty
    assert src.events["ts"].tolist() == [1675849836, 1675849937, 1676000000]  # milliseconds -> seconds


def test_kuairec_format(tmp_path):
    data = tmp_path / "KuaiRec 2.0" / "data"
    data.mkdir(parents=True)
    (data / "small_matrix.csv").write_text(
        "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
        "14,148,4381,6067,2020-07-05 05:27:48.378,20200705,1593898068.378,0.722\n"
        "14,183,11635,6100,2020-07-05 05:28:00.057,20200705,1593898080.057,1.907\n"
        "19,148,12000,6067,2020-07-05 06:00:00.000,20200705,,1.978\n"
        "19,183,100,6100,,20200705,,1.2\n"
    )
    (data / "kuairec_caption_category.csv").write_text(
        "video_id,manual_cover_text,caption,topic_tag,first_level_category_id,first_level_category_name,"
        "second_level_category_id,second_level_category_name,third_level_category_id,third_level_category_name\n"
        '148,UNKNOWN,"第一行\n第二行 #美食",[美食],8,美食,673,美食教程,-124,UNKNOWN\n'
        "183,封面文字,,\"['搞笑','日常']\",27,高颜值,-124,UNKNOWN,-124,UNKNOWN\n"
    )
    videos, comments, events = kuairec_tables(tmp_path / "KuaiRec 2.0")
    v = videos.set_index("video_id")
    assert v.loc["k148", "title"] == "第一行\n第二行 #美食"  # the multi-line quoted caption survives
    assert v.loc["k148", "category"] == "美食" and v.loc["k148", "tags"] == "美食"
    assert v.loc["k183", "title"] == "封面文字" and v.loc["k183", "tags"] == "搞笑|日常"
    assert v.loc["k148", "duration_s"] == pytest.approx(6.067)
    # watch_ratio 0.722 is below 1.0: not a view; the rest are, completion capped at 1
    assert events["video_id"].tolist() == ["k183", "k148", "k183"]
    assert events["completion"].tolist() == [1.0, 1.0, 1.0]
    # a missing timestamp falls back to `time` in Beijing time (UTC+8)
    assert events["ts"].iloc[1] == pytest.approx(1593900000.0)
    src = validate_source(videos, comments, events)
    # the row with neither timestamp nor time is quarantined with its reason, not lost silently
    assert src.quarantine["reason"].tolist() == ["unparseable ts"] and len(src.events) == 2
    stricter = kuairec_tables(tmp_path / "KuaiRec 2.0", min_watch_ratio=1.95)[2]
    assert stricter["video_id"].tolist() == ["k148"]


def test_movietweetings_format(tmp_path):
    from pipelines.adapters import movietweetings_tables

    (tmp_path / "ratings.dat").write_text(
        "1::1074638::7::1365029107\n"
        "1::1853728::10::1366576639\n"
        "2::0104257::0::1364690142\n"
        "garbage line\n"
        "3::9999999::8::1364690000\n",  # a rated movie missing from movies.dat
        encoding="utf-8",
    )
    (tmp_path / "movies.dat").write_text(
        "1074638#Skyfall (2012)#Action|Adventure|Thriller\n"
        "1853728#Django Unchained (2012)#Drama|Western\n"
        "0104257#A Few Good Men (1992)#\n"  # no genres
        "0002844#Fantômas - À l'ombre de la guillotine (1913)#Crime|Drama\n"
        "0000001#Number #9 (2001)#Comedy\n",  # '#' inside a title
        encoding="utf-8",
    )
    videos, comments, events = movietweetings_tables(tmp_path)
    by_id = videos.set_index("video_id")
    assert by_id.loc["t1074638", "title"] == "Skyfall (2012)"
    assert by_id.loc["t1074638", "tags"] == "Action|Adventure|Thriller"
    assert by_id.loc["t1074638", "category"] == "Action"
    assert by_id.loc["t0104257", "tags"] == "" and by_id.loc["t0104257", "category"] == ""
    assert by_id.loc["t0002844", "title"] == "Fantômas - À l'ombre de la guillotine (1913)"
    assert by_id.loc["t0000001", "title"] == "Number #9 (2001)"
    assert by_id.loc["t9999999", "title"] == ""  # rated, not described: still a video
    assert events[["user_id", "video_id", "ts"]].values.tolist() == [
        ["u1", "t1074638", 1365029107],
        ["u1", "t1853728", 1366576639],
        ["u2", "t0104257", 1364690142],
        ["u3", "t9999999", 1364690000],
    ]
    assert events["completion"].tolist() == [0.7, 1.0, 0.0, 0.8]
    assert comments.empty
    src = validate_source(videos, comments, events)
    assert src.quarantine.empty and len(src.events) == 4 and len(src.videos) == 6
    summary = import_source("movietweetings", tmp_path, tmp_path / "out")
    assert summary == {"videos": 6, "comments": 0, "events": 4}


def test_movietweetings_without_ratings_is_a_clear_error(tmp_path):
    from pipelines.adapters import movietweetings_tables

    with pytest.raises(FileNotFoundError, match="ratings.dat"):
        movietweetings_tables(tmp_path)


def test_real_movietweetings_imports(tmp_path):
    from pipelines.adapters import movietweetings_tables

    path = shared_file("movietweetings-100k", "ratings.dat").parent
    videos, comments, events = movietweetings_tables(path)
    src = validate_source(videos, comments, events)
    assert len(src.events) == 100_000 and events["user_id"].nunique() == 16_554
    assert src.videos["video_id"].nunique() >= 10_506 and src.quarantine.empty
