"""`vidrec fresh` on a copy of the demo run: a clip uploaded after training gets an embedding,
similar videos and a place in its category's fresh list, served by the API, without retraining."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import redis
from fastapi.testclient import TestClient

from cache import keys
from pipelines import fresh
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import shared_file

pytestmark = pytest.mark.slow


def test_a_clip_uploaded_after_training_is_recommendable_without_retraining(pipeline_run, tmp_path, namespace):
    cfg, _ = pipeline_run
    client = redis.Redis.from_url(cfg.redis_url)
    version = client.get(keys.live_key(cfg.namespace)).decode()
    source, work = tmp_path / "src", tmp_path / "work"
    shutil.copytree(cfg.source, source)
    shutil.copytree(cfg.workdir, work)  # the model folder and the feature caches
    shutil.copy(shared_file("videos", "bikes.mp4"), source / "media" / "new-clip.mp4")
    with (source / "videos.csv").open("a") as f:
        f.write("new-clip,the garlic pasta recipe,a spicy pasta bake from the kitchen,recipe|pasta,cooking,10.0,,media/new-clip.mp4\n")  # fmt: skip
    client.set(keys.live_key(namespace), version)
    client.set(keys.meta_key(namespace, version), "{}", ex=600)
    mine = replace(cfg, source=source, workdir=work, namespace=namespace)

    summary = fresh.run(mine, "2026-11-29")
    assert summary["version"] == version and summary["fresh"] == 1 and summary["written"] > 0
    assert "cooking" in summary["categories"]
    assert sorted(p.name for p in (work / "models").iterdir()) == sorted(
        p.name for p in (cfg.workdir / "models").iterdir()
    )

    settings = Settings(redis_url=cfg.redis_url, namespace=namespace, model_root=str(work / "models"))
    with TestClient(create_app(settings)) as api:
        similar = api.get("/v1/videos/new-clip/similar", params={"k": 10}).json()
        assert similar["source"] == "similar" and len(similar["items"]) == 10
        assert "new-clip" not in [i["video_id"] for i in similar["items"]]
        listed = api.get("/v1/fresh", params={"category": "cooking"}).json()
        assert [i["video_id"] for i in listed["items"]] == ["new-clip"] and listed["model_version"] == version
        assert api.get("/v1/fresh", params={"category": "space"}).json()["items"] == []
        # mixed into a user's answer, spread over it and marked as fresh
        user = json.loads((work / "models" / version / "users.json").read_text())[0]
        for key in (keys.user_key, keys.popular_key):  # the published lists, as the nightly wrote them
            args = (version, user) if key is keys.user_key else (version,)
            client.set(key(namespace, *args), client.get(key(cfg.namespace, *args)), ex=600)
        assert client.get(keys.fresh_user_key(namespace, version, user)) is not None
        answer = api.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()
        assert len(answer["items"]) == 20
        assert [(n, i["video_id"]) for n, i in enumerate(answer["items"]) if i.get("reason") == "fresh"] == [
            (10, "new-clip")
        ]
    quiet = Settings(redis_url=cfg.redis_url, namespace=namespace, model_root=str(work / "models"), fresh_per_answer=0)
    with TestClient(create_app(quiet)) as api:
        answer = api.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()
        assert "new-clip" not in [i["video_id"] for i in answer["items"]]
    # run again (hourly): the same clip, still not in the trained version, is rewritten with the same bytes
    before = client.get(keys.similar_key(namespace, version, "new-clip"))
    assert fresh.run(mine, "2026-11-29")["fresh"] == 1
    assert client.get(keys.similar_key(namespace, version, "new-clip")) == before
