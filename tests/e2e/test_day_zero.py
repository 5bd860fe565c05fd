"""Sources a new service has on day one: empty tables, no comments, no media, no events.

Each case writes a real source folder (CSV files, real video clips where it has media) and runs
the whole nightly flow in-process on it, publishing to a real Redis, then asks the API.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.config import PipelineConfig
from pipelines.nightly import run_nightly
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import shared_file

pytestmark = pytest.mark.slow

RUN_DATE = "2026-12-01"
DAY = 86400
T0 = 1_764_000_000  # 2025-11-24, before the run date

VIDEOS = [
    ("v1", "Cooking pasta at home", "easy dinner for two", "food", T0),
    ("v2", "Mountain biking trails", "", "sport", T0 + DAY),
    ("v3", "Learn guitar chords", "a beginner lesson", "music", T0 + 2 * DAY),
    ("v4", "Knife skills for vegetables", "chopping onions fast", "food", T0 + 3 * DAY),
    ("v5", "Trail running in the rain", "", "sport", ""),
]


def write_source(root: Path, events: list[tuple[str, str, int]], comments: list[tuple[str, str]], media: bool) -> Path:
    """A data-contract folder: videos.csv always; events.csv and comments.csv with a header and
    the given rows (possibly none); two real clips for v1 and v2 when ``media``."""
    root.mkdir(parents=True)
    lines = ["video_id,title,description,category,published_at,media_path"]
    for i, (vid, title, desc, cat, published) in enumerate(VIDEOS):
        path = ""
        if media and i < 2:
            clip = shared_file("videos", ("bikes.mp4", "carphone_pristine.mp4")[i])
            path = f"media/{clip.name}"
            (root / "media").mkdir(exist_ok=True)
            shutil.copy(clip, root / path)
        lines.append(f"{vid},{title},{desc},{cat},{published},{path}")
    (root / "videos.csv").write_text("\n".join(lines) + "\n")
    (root / "events.csv").write_text("user_id,video_id,ts\n" + "".join(f"{u},{v},{t}\n" for u, v, t in events))
    (root / "comments.csv").write_text("video_id,text\n" + "".join(f"{v},{t}\n" for v, t in comments))
    return root


def run(tmp_path: Path, redis_url: str, namespace: str, source: Path) -> tuple[PipelineConfig, dict]:
    cfg = PipelineConfig(source=source, workdir=tmp_path / "work", namespace=namespace, redis_url=redis_url)
    cfg = replace(cfg, model=replace(cfg.model, epochs=2, embedding_dim=16), tune_seconds=0.0)
    return cfg, run_nightly(cfg, RUN_DATE)


def served(cfg: PipelineConfig, user: str) -> dict:
    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace, model_root=str(cfg.workdir / "models"))
    with TestClient(create_app(settings)) as c:
        body = c.get(f"/v1/users/{user}/recommendations", params={"k": 3})
        assert body.status_code == 200, body.text
        # a newcomer who posts a watch on day one is still answered (no model to score online)
        posted = c.post("/v1/events", json={"events": [{"user_id": "newbie", "video_id": "v1"}]})
        assert posted.status_code == 202, posted.text
        newbie = c.get("/v1/users/newbie/recommendations", params={"k": 3})
        assert newbie.status_code == 200, newbie.text
        assert "v1" not in [i["video_id"] for i in newbie.json()["items"]]
        return body.json()


def test_empty_tables_no_media_publish_the_newest_videos(tmp_path, redis_url, namespace):
    """Headers and no rows: no model, a report that says why, the newest videos served to all."""
    source = write_source(tmp_path / "src", events=[], comments=[], media=False)
    cfg, out = run(tmp_path, redis_url, namespace, source)
    assert out["ingest"]["events"] == 0 and out["ingest"]["comments"] == 0
    assert out["frame_features"]["embedded"] == 0
    assert out["text_features"]["with_caption"] == 5 and out["text_features"]["with_comments"] == 0
    assert out["dataset"]["no_model"].startswith("no events yet")
    assert out["train"] == {"version": None, "trained": False, "reason": out["dataset"]["no_model"]}
    report = json.loads((cfg.partition(RUN_DATE, "evaluate") / "report.json").read_text())
    assert report["no_model"] == out["dataset"]["no_model"] and report["model_version"] is None
    assert "no events yet" in (cfg.partition(RUN_DATE, "evaluate") / "report.html").read_text()
    assert out["publish"]["published"] and out["publish"]["version"] == "popular-20261201"
    body = served(cfg, "u1")
    assert body["source"] == "popular" and body["model_version"] == "popular-20261201"
    assert [i["video_id"] for i in body["items"]] == ["v4", "v3", "v2"]  # newest first


def test_no_events_with_media_and_comments(tmp_path, redis_url, namespace):
    """Frames and comments are embedded though nothing was watched; the category lists are the newest."""
    source = write_source(tmp_path / "src", events=[], comments=[("v1", "so tasty"), ("v2", "great ride")], media=True)
    cfg, out = run(tmp_path, redis_url, namespace, source)
    assert out["frame_features"]["embedded"] == 2 and out["text_features"]["with_comments"] == 2
    assert out["dataset"]["items_with_visual"] == 2 and "no_model" in out["dataset"]
    assert out["publish"]["published"] and out["publish"]["categories"] == 3
    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace, model_root=str(cfg.workdir / "models"))
    with TestClient(create_app(settings)) as c:
        food = c.get("/v1/popular", params={"k": 5, "category": "food"}).json()
    assert [i["video_id"] for i in food["items"]] == ["v4", "v1"]


def test_too_few_events_popular_from_what_was_watched(tmp_path, redis_url, namespace):
    """One event cannot be split: no model, and the popular list is what was watched."""
    source = write_source(tmp_path / "src", events=[("u1", "v2", T0 + 5 * DAY)], comments=[], media=False)
    cfg, out = run(tmp_path, redis_url, namespace, source)
    assert out["dataset"]["no_model"].startswith("too few events")
    body = served(cfg, "u2")
    assert body["items"][0]["video_id"] == "v2"


def test_events_without_comments_or_media_train_on_captions(tmp_path, redis_url, namespace):
    """A catalogue with events but no comments and no media trains on captions alone (fewer events
    than one batch) and replaces a popular-only live version; every user watched every video they
    could, so nothing is left to evaluate: the report says so and the gate lets the model out."""
    empty = write_source(tmp_path / "day0", events=[], comments=[], media=False)
    run(tmp_path / "a", redis_url, namespace, empty)
    events = [(f"u{u}", VIDEOS[(u + j) % 4][0], T0 + 4 * DAY + u * 600 + j * 60) for u in range(30) for j in range(4)]
    source = write_source(tmp_path / "day1", events=events, comments=[], media=False)
    cfg, out = run(tmp_path / "b", redis_url, namespace, source)
    assert out["dataset"]["items_with_caption"] == 5 and out["dataset"]["items_with_comments"] == 0
    assert out["dataset"]["items_with_visual"] == 0 and "no_model" not in out["dataset"]
    assert out["train"]["version"] and out["publish"]["published"]
    assert out["evaluate"]["no_evaluation"].startswith("no user has a held-out video")
    assert "published ungated" in out["publish"]["reason"]
    assert out["publish"]["previous_version"] == "popular-20261201"
    body = served(cfg, "u3")
    assert body["model_version"] == out["train"]["version"]
