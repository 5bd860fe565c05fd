"""GET /v1/search on the session's trained demo model: queries embedded by the ONNX caption
encoder and matched in the live version's item space; topic queries find the topic's videos,
an exact title finds its video, a user's watches re-rank the matches, answers follow the live
version, and a search that cannot be answered says why (4xx/503, never a 500)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def text_encoder_dir(tmp_path_factory):
    from recsys.text_onnx import export_text_onnx

    return export_text_onnx(out=tmp_path_factory.mktemp("text-onnx") / "minilm")


def _settings(cfg, text_encoder_dir, **kw) -> Settings:
    return Settings(
        redis_url=cfg.redis_url,
        namespace=cfg.namespace,
        model_root=str(cfg.workdir / "models"),
        text_encoder_dir=str(text_encoder_dir),
        **kw,
    )


def test_search_finds_topics_and_titles_from_the_live_version(pipeline_run, text_encoder_dir):
    from pipelines.demo_data import TOPICS, DemoConfig, plan_demo_source
    from tests.conftest import DEMO

    cfg, summaries = pipeline_run
    version = summaries["train"]["version"]
    plan = plan_demo_source(DemoConfig(**DEMO))
    topic_of = {s.video_id: s.topic for s in plan.specs}
    titles = {r["video_id"]: r["title"] for r in plan.videos.to_dict("records")}
    with TestClient(create_app(_settings(cfg, text_encoder_dir))) as c:
        precision = []
        for t, (_name, words) in enumerate(TOPICS[: len({s.topic for s in plan.specs})]):
            body = c.get("/v1/search", params={"q": " ".join(words[:3]), "k": 10}).json()
            assert body["model_version"] == version and not body["personalized"] and len(body["items"]) == 10
            precision.append(np.mean([topic_of.get(i["video_id"]) == t for i in body["items"]]))
        # chance is 1/8: the query's words are only in its topic's captions
        assert np.mean(precision) > 0.5, precision
        found = 0
        titled = [(v, t) for v, t in titles.items() if isinstance(t, str) and t.strip()]  # some are empty
        for vid, title in titled[:20]:
            answer = c.get("/v1/search", params={"q": title, "k": 10})
            assert answer.status_code == 200, (title, answer.text)
            ids = [i["video_id"] for i in answer.json()["items"]]
            found += vid in ids or any(titles[i] == title for i in ids)  # demo titles may repeat
        assert found >= 10, found
        # the lexical and hybrid modes: a title's words find that title through BM25 too
        for mode in ("lexical", "hybrid"):
            found = 0
            for vid, title in titled[:20]:
                body = c.get("/v1/search", params={"q": title, "k": 10, "mode": mode}).json()
                assert body["mode"] == mode and body["model_version"] == version
                ids = [i["video_id"] for i in body["items"]]
                found += vid in ids or any(titles[i] == title for i in ids)
            assert found >= 15, (mode, found)
        # a word in no video's text: lexical finds nothing, hybrid still answers from the semantic side
        assert c.get("/v1/search", params={"q": "zqxjv", "mode": "lexical"}).json()["items"] == []
        assert len(c.get("/v1/search", params={"q": "zqxjv", "k": 5, "mode": "hybrid"}).json()["items"]) == 5

        # a user's watches re-rank the matches: same candidates, the user's favourite topic first
        cooking = [v for v, t in topic_of.items() if t == 0][:3]
        events = [{"user_id": "searcher", "video_id": v, "completion": 1.0} for v in cooking]
        assert c.post("/v1/events", json={"events": events}).status_code == 202
        plain = c.get("/v1/search", params={"q": "dinner", "k": 10}).json()
        mine = c.get("/v1/search", params={"q": "dinner", "k": 10, "user_id": "searcher"}).json()
        assert mine["personalized"] and mine["user_id"] == "searcher" and len(mine["items"]) == 10
        assert [i["video_id"] for i in mine["items"]] != [i["video_id"] for i in plain["items"]] or all(
            topic_of[i["video_id"]] == 0 for i in plain["items"]
        )
        unknown = c.get("/v1/search", params={"q": "dinner", "k": 5, "user_id": "nobody-here"}).json()
        assert not unknown["personalized"] and len(unknown["items"]) == 5
        # the fast path and FastAPI's route (where a repeated parameter goes, the last value winning)
        # answer alike; the repeated query is answered from the kept answers, the same body
        fast = c.get("/v1/search?q=dinner&k=10")
        routed = c.get("/v1/search?k=3&q=dinner&k=10")
        assert fast.status_code == routed.status_code == 200 and fast.json() == routed.json() == plain
        assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
        assert 'route="/v1/search"' in c.get("/metrics").text

        for params, status in (
            ({"q": ""}, 422),
            ({"q": "   "}, 422),
            ({"q": "x" * 501}, 422),
            ({"q": "goal", "k": 0}, 422),
            ({"q": "goal", "user_id": "bad id!"}, 422),
            ({"q": "goal", "mode": "fuzzy"}, 422),
        ):
            assert c.get("/v1/search", params=params).status_code == status, params
        assert "/v1/search" in c.get("/openapi.json").json()["paths"]


def test_search_follows_the_live_version_and_says_when_it_cannot(pipeline_run, text_encoder_dir, tmp_path):
    from cache import keys

    cfg, summaries = pipeline_run
    version = summaries["train"]["version"]
    # a second version: the same model with its video ids in reverse order, made live
    models = tmp_path / "models"
    shutil.copytree(cfg.workdir / "models" / version, models / "ver-reversed")
    shutil.copytree(cfg.workdir / "models" / version, models / version)
    items = json.loads((models / "ver-reversed" / "items.json").read_text())
    (models / "ver-reversed" / "items.json").write_text(json.dumps(items[::-1]))
    settings = Settings(
        redis_url=cfg.redis_url,
        namespace=cfg.namespace,
        model_root=str(models),
        text_encoder_dir=str(text_encoder_dir),
        live_version_cache_seconds=0,
    )
    client = redis.Redis.from_url(cfg.redis_url)
    live_key = keys.live_key(cfg.namespace)
    try:
        with TestClient(create_app(settings)) as c:
            first = c.get("/v1/search", params={"q": "rocket launch", "k": 5}).json()
            assert first["model_version"] == version
            client.set(live_key, "ver-reversed")
            second = c.get("/v1/search", params={"q": "rocket launch", "k": 5}).json()
            assert second["model_version"] == "ver-reversed"
            pos = {v: i for i, v in enumerate(items)}
            assert [i["video_id"] for i in second["items"]] == [
                items[len(items) - 1 - pos[i["video_id"]]] for i in first["items"]
            ]
            client.set(live_key, "ver-not-on-disk")
            gone = c.get("/v1/search", params={"q": "rocket launch"})
            assert gone.status_code == 503 and "cannot be searched" in gone.json()["detail"]
        client.set(live_key, version)
        bare = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace)
        with TestClient(create_app(bare)) as c:
            off = c.get("/v1/search", params={"q": "rocket"})
            assert off.status_code == 503 and "not configured" in off.json()["detail"]
    finally:
        client.set(live_key, version)
        client.close()
