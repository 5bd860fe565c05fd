"""Adapters: public data sets into the data contract (videos, comments, events).

* ``movielens``: the "latest" format (ratings.csv, movies.csv, optional tags.csv) or the 100K
  format (u.data tab-separated user/item/rating/timestamp; u.item pipe-separated latin-1
  id|title|release date|video release date|url|19 genre flags). Movies become videos without a
  media file (text-only: title, genres as tags, first genre as category); every rating is a
  watch event (``completion`` = rating / 5); free-text tags become comments.

* ``microlens``: MicroLens (``*_pairs.csv``: user,item,timestamp in milliseconds; ``*_titles*.csv``:
  item,title). Each pair is a view; where a videos folder holds ``<item>.mp4`` it becomes the
  video's media file, where a covers folder holds ``<item>.jpg`` its cover.

* ``kuairec``: KuaiRec (``big_matrix.csv`` or ``small_matrix.csv``: user_id, video_id,
  play_duration, video_duration (ms), time, date, timestamp (s), watch_ratio; captions in
  ``kuairec_caption_category.csv`` with multi-line quoted Chinese captions). The matrix holds
  every exposure, so only plays with ``watch_ratio >= min_watch_ratio`` (default 1.0, i.e. played
  at least once through) become view events, with completion = min(watch_ratio, 1). Rows whose
  ``timestamp`` is missing fall back to ``time`` (Beijing time). Caption rows that cannot be
  parsed are skipped with a count in the log; their videos keep an empty title.

* ``movietweetings``: MovieTweetings (``ratings.dat``: ``user::imdb_id::rating::unix_ts`` with
  ratings 0-10; ``movies.dat``: ``imdb_id#title (year)#genre|genre``, or ``::`` as separator as
  upstream writes it; UTF-8). Movies become text-only videos (title, genres as tags, first genre as
  category; the release year stays in the title, it is no upload date); every rating is a view with ``completion`` = rating / 10.
  Rated ids missing from ``movies.dat`` still become (untitled) videos; unparseable lines are
  skipped with a count in the log.

* ``csv``: a folder of videos.csv / comments.csv / events.csv with other column names, renamed
  by a mapping (``--map events.user_id=uid``).

Ids are prefixed (``m`` for movies, ``u`` for users) so they never collide across sources.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def movielens_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(videos, comments, events) in the data contract from a MovieLens folder of either format."""
    if (path / "ratings.csv").exists() and (path / "movies.csv").exists():
        return _movielens_latest(path)
    if (path / "u.data").exists() and (path / "u.item").exists():
        return _movielens_100k(path)
    raise FileNotFoundError(f"{path} holds neither ratings.csv + movies.csv nor u.data + u.item (MovieLens formats)")


def _events(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": "u" + df["user"].astype(str),
            "video_id": "m" + df["item"].astype(str),
            "ts": df["ts"].astype("int64"),
            "completion": (df["rating"].astype(float) / 5.0).clip(0, 1),
            "event": "view",
        }
    )


def _movielens_latest(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    movies = pd.read_csv(path / "movies.csv", dtype={"movieId": str}, encoding_errors="replace")
    genres = movies["genres"].fillna("").replace("(no genres listed)", "")
    videos = pd.DataFrame(
        {
            "video_id": "m" + movies["movieId"],
            "title": movies["title"].fillna(""),
            "tags": genres,
            "category": genres.str.split("|").str[0].fillna(""),
        }
    )
    ratings = pd.read_csv(path / "ratings.csv")
    events = _events(ratings.rename(columns={"userId": "user", "movieId": "item", "timestamp": "ts"}))
    comments = pd.DataFrame(columns=["comment_id", "video_id", "text", "created_at", "likes"])
    if (path / "tags.csv").exists():
        tags = pd.read_csv(path / "tags.csv", dtype={"movieId": str, "tag": str}, encoding_errors="replace")
        comments = pd.DataFrame(
            {
                "comment_id": [f"t{i}" for i in range(len(tags))],
                "video_id": "m" + tags["movieId"],
                "text": tags["tag"].fillna(""),
                "created_at": tags["timestamp"],
                "likes": 0,
            }
        )
    return videos, comments, events


def _movielens_100k(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    data = pd.read_csv(path / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    cols = ["item", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
    items = pd.read_csv(path / "u.item", sep="|", names=cols, encoding="latin-1", dtype={"item": str})
    flags = items[list(ML100K_GENRES)].astype(bool)
    genre_lists = flags.apply(lambda row: [g for g, on in row.items() if on and g != "unknown"], axis=1)
    videos = pd.DataFrame(
        {
            "video_id": "m" + items["item"],
            "title": items["title"].fillna(""),
            "tags": genre_lists.map("|".join),
            "category": genre_lists.map(lambda g: g[0] if g else ""),
            "published_at": pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").map(
                lambda t: "" if pd.isna(t) else t.strftime("%Y-%m-%dT00:00:00Z")
            ),
        }
    )
    comments = pd.DataFrame(columns=["comment_id", "video_id", "text", "created_at", "likes"])
    return videos, comments, _events(data)


def _split_movie_line(line: str) -> tuple[str, str, str] | None:
    """``id#title (year)#genres`` (or ``::``) -> (id, title, genres); None when it does not parse.

    The title is everything between the first and the last separator, so a ``#`` inside a title
    survives."""
    sep = "::" if "::" in line else "#"
    head, _, rest = line.partition(sep)
    title, _, genres = rest.rpartition(sep)
    if not head.strip() or not _:
        return None
    return head.strip(), title.strip(), genres.strip()


def movietweetings_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(videos, comments, events) from a MovieTweetings folder (ratings.dat, optional movies.dat)."""
    ratings_file = path / "ratings.dat"
    if not ratings_file.exists():
        raise FileNotFoundError(f"{path} holds no ratings.dat (MovieTweetings: user::imdb_id::rating::unix_ts)")
    rows, bad = [], 0
    with ratings_file.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split("::")
            if len(parts) != 4 or not all(p.strip() for p in parts):
                bad += int(bool(line.strip()))
                continue
            rows.append(parts)
    if bad:
        log.warning("movietweetings: skipped %d unparseable lines in %s", bad, ratings_file.name)
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"])
    rating = pd.to_numeric(ratings["rating"], errors="coerce")
    events = pd.DataFrame(
        {
            "user_id": "u" + ratings["user"].str.strip(),
            "video_id": "t" + ratings["item"].str.strip(),
            "ts": pd.to_numeric(ratings["ts"], errors="coerce"),  # NaN is quarantined by ingest
            "completion": (rating / 10.0).clip(0.0, 1.0),
            "event": "view",
        }
    )
    movies: list[tuple[str, str, str]] = []
    movies_file = path / "movies.dat"
    if movies_file.exists():
        skipped = 0
        with movies_file.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                parsed = _split_movie_line(line.rstrip("\r\n"))
                if parsed is None:
                    skipped += int(bool(line.strip()))
                    continue
                movies.append(parsed)
        if skipped:
            log.warning("movietweetings: skipped %d unparseable lines in %s", skipped, movies_file.name)
    m = pd.DataFrame(movies, columns=["item", "title", "genres"]).drop_duplicates("item")
    rated = pd.DataFrame({"item": pd.unique(ratings["item"].str.strip())})
    m = pd.concat([m, rated[~rated["item"].isin(m["item"])]], ignore_index=True).fillna("")
    videos = pd.DataFrame(
        {
            "video_id": "t" + m["item"],
            "title": m["title"],
            "tags": m["genres"],
            "category": m["genres"].str.split("|").str[0].fillna(""),
        }
    )
    comments = pd.DataFrame(columns=["comment_id", "video_id", "text", "created_at", "likes"])
    return videos, comments, events


def csv_tables(
    path: Path, mapping: dict[str, dict[str, str]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Any folder of videos/comments/events CSVs whose columns are named otherwise.

    mapping: {table: {contract_column: source_column}}, e.g. {"events": {"user_id": "uid"}}.
    Columns not mapped keep their names; a mapped column that is absent is a clear error.
    """
    mapping = mapping or {}
    unknown = set(mapping) - {"videos", "comments", "events"}
    if unknown:
        raise ValueError(f"mapping names unknown tables {sorted(unknown)}; use videos, comments, events")
    out = []
    for table in ("videos", "comments", "events"):
        file = path / f"{table}.csv"
        if not file.exists():
            if table == "comments":
                out.append(pd.DataFrame(columns=["video_id", "text"]))
                continue
            raise FileNotFoundError(f"no {table}.csv in {path}")
        df = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""], encoding_errors="replace")
        renames = mapping.get(table, {})
        missing = [src for src in renames.values() if src not in df.columns]
        if missing:
            raise ValueError(f"{table}.csv has no column(s) {missing} named in the mapping; it has {list(df.columns)}")
        out.append(df.rename(columns={src: dst for dst, src in renames.items()}))
    return out[0], out[1], out[2]


def parse_mapping(items: list[str]) -> dict[str, dict[str, str]]:
    """["events.user_id=uid", ...] -> {"events": {"user_id": "uid"}}."""
    mapping: dict[str, dict[str, str]] = {}
    for item in items:
        try:
            left, source = item.split("=", 1)
            table, column = left.split(".", 1)
        except ValueError as exc:
            raise ValueError(f"mapping {item!r} must look like table.contract_column=source_column") from exc
        mapping.setdefault(table, {})[column] = source
    return mapping


def _one_file(path: Path, patterns: tuple[str, ...], what: str) -> Path | None:
    for pattern in patterns:
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    return None


def microlens_tables(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(videos, comments, events) from a MicroLens folder (pairs + titles, optional media)."""
    pairs_file = _one_file(path, ("*pairs.csv", "*_pairs*.csv"), "pairs")
    if pairs_file is None:
        raise FileNotFoundError(f"{path} holds no MicroLens *_pairs.csv (user,item,timestamp)")
    pairs = pd.read_csv(pairs_file, dtype={"user": str, "item": str})
    missing = {"user", "item", "timestamp"} - set(pairs.columns)
    if missing:
        raise ValueError(f"{pairs_file.name} lacks column(s) {sorted(missing)}; it has {list(pairs.columns)}")
    titles = pd.DataFrame({"item": pd.Series(dtype=str), "title": pd.Series(dtype=str)})
    titles_file = _one_file(path, ("*titles*.csv", "*title*.csv"), "titles")
    if titles_file is not None:
        titles = pd.read_csv(titles_file, dtype={"item": str, "title": str}, encoding_errors="replace")
    items = pd.DataFrame({"item": pd.unique(pd.concat([titles["item"], pairs["item"]]).dropna())})
    items = items.merge(titles.drop_duplicates("item"), on="item", how="left")
    media_dir = _one_file(path, ("*videos", "*video*"), "videos")
    cover_dir = _one_file(path, ("*covers", "*cover*"), "covers")

    def local(folder: Path | None, item: str, ext: str) -> str:
        if folder is None or not folder.is_dir() or not (folder / f"{item}{ext}").exists():
            return ""
        return str((folder / f"{item}{ext}").relative_to(path))

    videos = pd.DataFrame(
        {
            "video_id": "i" + items["item"],
            "title": items["title"].fillna(""),
            "media_path": [local(media_dir, i, ".mp4") for i in items["item"]],
            "cover_path": [local(cover_dir, i, ".jpg") for i in items["item"]],
        }
    )
    events = pd.DataFrame(
        {
            "user_id": "u" + pairs["user"],
            "video_id": "i" + pairs["item"],
            "ts": pairs["timestamp"],  # milliseconds: the contract reads numbers above 1e11 as ms
            "event": "view",
        }
    )
    return videos, pd.DataFrame(columns=["comment_id", "video_id", "text", "created_at", "likes"]), events


KUAIREC_TAG_JUNK = {"", "unknown", "[]", "nan"}


def _kuairec_text(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    return "" if text.lower() in KUAIREC_TAG_JUNK else text


def _kuairec_tags(value: object) -> str:
    """``"['tagA','tagB']"`` -> ``"tagA|tagB"``."""
    text = _kuairec_text(value).strip("[]")
    return "|".join(t.strip().strip("'\"") for t in text.split(",") if t.strip().strip("'\""))


def kuairec_tables(
    path: Path, matrix: str | None = None, min_watch_ratio: float = 1.0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(videos, comments, events) from a KuaiRec folder (its ``data/`` folder or the folder above)."""
    data = path / "data" if (path / "data").is_dir() else path
    names = (matrix,) if matrix else ("big_matrix.csv", "small_matrix.csv")
    found = [data / n for n in names if (data / n).exists()]
    if not found:
        raise FileNotFoundError(f"{data} holds no KuaiRec {' or '.join(names)}")
    m = pd.read_csv(found[0], dtype={"user_id": str, "video_id": str})
    missing = {"user_id", "video_id", "watch_ratio"} - set(m.columns)
    if missing:
        raise ValueError(f"{found[0].name} lacks column(s) {sorted(missing)}; it has {list(m.columns)}")
    ratio = pd.to_numeric(m["watch_ratio"], errors="coerce")
    plays = m[ratio >= min_watch_ratio]
    ts = pd.to_numeric(plays.get("timestamp"), errors="coerce") if "timestamp" in plays else None
    if ts is None or ts.isna().any():
        fallback = pd.to_datetime(plays.get("time"), errors="coerce")
        fallback_s = (fallback - pd.Timestamp("1970-01-01 08:00:00")).dt.total_seconds()  # Beijing = UTC+8
        ts = fallback_s if ts is None else ts.fillna(fallback_s)
    events = pd.DataFrame(
        {
            "user_id": "u" + plays["user_id"],
            "video_id": "k" + plays["video_id"],
            "ts": ts,  # still NaN where neither column parses: the contract quarantines those rows
            "completion": ratio[plays.index].clip(0.0, 1.0),
            "watch_seconds": pd.to_numeric(plays.get("play_duration"), errors="coerce") / 1000.0,
            "event": "view",
        }
    )
    duration = m.groupby("video_id")["video_duration"].first() / 1000.0 if "video_duration" in m else None
    captions = pd.DataFrame(columns=["video_id"])
    caption_file = data / "kuairec_caption_category.csv"
    if caption_file.exists():
        skipped: list[list[str]] = []

        def bad_line(fields: list[str]) -> None:
            skipped.append(fields)
            return None

        captions = pd.read_csv(
            caption_file, dtype=str, engine="python", on_bad_lines=bad_line, encoding_errors="replace"
        ).drop_duplicates("video_id")
        if skipped:
            log.warning("kuairec: skipped %d unparseable caption rows in %s", len(skipped), caption_file.name)
    ids = pd.unique(pd.concat([m["video_id"], captions["video_id"]]).dropna())
    cap = captions.set_index("video_id").reindex(ids)
    col = lambda name: cap[name] if name in cap else pd.Series("", index=cap.index)  # noqa: E731
    caption = col("caption").map(_kuairec_text)
    cover_text = col("manual_cover_text").map(_kuairec_text)
    videos = pd.DataFrame(
        {
            "video_id": "k" + pd.Series(ids, dtype=str),
            "title": caption.where(caption != "", cover_text).to_numpy(),
            "description": cover_text.to_numpy(),
            "tags": col("topic_tag").map(_kuairec_tags).to_numpy(),
            "category": col("first_level_category_name").map(_kuairec_text).to_numpy(),
            "duration_s": duration.reindex(ids).to_numpy() if duration is not None else float("nan"),
        }
    )
    log.info(
        "kuairec: %d of %d matrix rows have watch_ratio >= %s and become view events",
        len(plays),
        len(m),
        min_watch_ratio,
    )
    return videos, pd.DataFrame(columns=["comment_id", "video_id", "text", "created_at", "likes"]), events


ADAPTERS = {
    "movielens": movielens_tables,
    "movietweetings": movietweetings_tables,
    "microlens": microlens_tables,
    "kuairec": kuairec_tables,
    "csv": csv_tables,
}


def import_source(
    fmt: str,
    path: Path,
    out: Path,
    mapping: dict[str, dict[str, str]] | None = None,
    min_watch_ratio: float = 1.0,
) -> dict[str, int]:
    """Convert a public data set at ``path`` into a data-contract folder ``out`` (Parquet).

    Media and cover paths stay relative to ``path``; they are rewritten relative to ``out``.
    """
    if fmt not in ADAPTERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(ADAPTERS)}")
    if fmt == "csv":
        videos, comments, events = csv_tables(Path(path), mapping)
    elif fmt == "kuairec":
        videos, comments, events = kuairec_tables(Path(path), min_watch_ratio=min_watch_ratio)
    else:
        videos, comments, events = ADAPTERS[fmt](Path(path))
    out.mkdir(parents=True, exist_ok=True)
    for col in ("media_path", "cover_path"):
        if col in videos:
            videos[col] = [
                os.path.relpath(Path(path).resolve() / p, out.resolve()) if isinstance(p, str) and p else ""
                for p in videos[col]
            ]
    videos.to_parquet(out / "videos.parquet", index=False)
    comments.to_parquet(out / "comments.parquet", index=False)
    events.to_parquet(out / "events.parquet", index=False)
    summary = {"videos": len(videos), "comments": len(comments), "events": len(events)}
    log.info("imported %s from %s into %s: %s", fmt, path, out, summary)
    return summary
