"""The nightly run keeps each video's summary (frame times and a JPEG strip) and the API serves
it from the live version: GET /v1/videos/{id}/summary and its strip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow


def test_summaries_are_kept_and_served(pipeline_run):
    import cv2

    from pipelines import frame_features

    cfg, summaries = pipeline_run
    version = summaries["train"]["version"]
    frames = frame_features.load(cfg, RUN_DATE)
    kept = json.loads((cfg.model_dir(version) / "summaries.json").read_text())
    playable = frames[frames["summary_s"].map(len) > 0]
    assert len(kept) == len(playable) > 0 and cfg.summary_frames == 3
    vid, entry = next(iter(sorted(kept.items())))
    times = entry["timestamps_s"]
    assert 1 <= len(times) <= 3 and times == sorted(times)
    strip_file = cfg.workdir / "summaries" / entry["strip"]
    assert strip_file.exists()

    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace, model_root=str(cfg.workdir / "models"))
    with TestClient(create_app(settings)) as c:
        body = c.get(f"/v1/videos/{vid}/summary").json()
        assert body == {
            "video_id": vid,
            "model_version": version,
            "timestamps_s": times,
            "strip_url": f"/v1/videos/{vid}/summary.jpg",
        }
        image = c.get(body["strip_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        strip = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
        assert strip.shape[0] == 96 and strip.shape[1] > 96
        assert c.get("/v1/videos/v_corrupt/summary").status_code == 404  # quarantined: no summary
        assert c.get("/v1/videos/nope/summary.jpg").status_code == 404
        assert c.get("/v1/videos/bad id!/summary").status_code == 422
    with TestClient(create_app(Settings(redis_url=cfg.redis_url, namespace=cfg.namespace))) as c:
        assert c.get(f"/v1/videos/{vid}/summary").status_code == 503
