"""Adapters: public data sets into the data contract (videos, comments, events).

* ``movielens``: the "latest" format (ratings.csv, movies.csv, optional tags.csv) or the 100K
  format (u.data tab-separated user/item/rating/timestamp; u.item pipe-separated latin-1
  id|title|release date|video release date|url|19 genre flags). Movies become videos without a
  media file (text-only: title, genres as tags, first genre as category); every rating is a
  watch event (``completion`` = rating / 5); free-text tags become comments.

* ``csv``: a folder of videos.csv / comments.csv / events.csv with other column names, renamed
  by a mapping (``--map events.user_id=uid``).

Ids are prefixed (``m`` for movies, ``u`` for users) so they never collide across sources.
"""

from __future__ import annotations

import logging
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


ADAPTERS = {"movielens": movielens_tables, "csv": csv_tables}


def import_source(fmt: str, path: Path, out: Path, mapping: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
    """Convert a public data set at ``path`` into a data-contract folder ``out`` (Parquet)."""
    if fmt not in ADAPTERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(ADAPTERS)}")
    if fmt == "csv":
        videos, comments, events = csv_tables(Path(path), mapping)
    else:
        videos, comments, events = ADAPTERS[fmt](Path(path))
    out.mkdir(parents=True, exist_ok=True)
    videos.to_parquet(out / "videos.parquet", index=False)
    comments.to_parquet(out / "comments.parquet", index=False)
    events.to_parquet(out / "events.parquet", index=False)
    summary = {"videos": len(videos), "comments": len(comments), "events": len(events)}
    log.info("imported %s from %s into %s: %s", fmt, path, out, summary)
    return summary
