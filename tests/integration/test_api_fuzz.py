"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis) against a real
server and the real Redis: whatever the generated input, no answer is a server error (5xx)."""

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from cache.writer import TopK, publish_version
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread, _delete_namespace


def _tiny_model(folder, items: list[str]) -> None:
    """A trained two-tower's folder as search reads it (items, scoring layout, item rows, numpy
    item tower, caption embeddings, texts for BM25), trained for one epoch on random content: search is configured and answers."""
    import json
    from dataclasses import asdict

    import numpy as np

    from recsys.model import ItemContent, TrainingExamples, TwoTowerConfig
    from recsys.model.training import train_two_tower
    from recsys.online import CAPTIONS_FILE, ITEM_TOWER_FILE, SEARCH_TEXTS_FILE, export_numpy_item_tower

    rng = np.random.default_rng(0)
    n = len(items)
    f = lambda d: rng.normal(size=(n, d)).astype(np.float32)  # noqa: E731
    ones = np.ones(n, np.float32)
    content = ItemContent(f(16), ones, f(384), ones, f(384), ones)
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, epochs=1, batch_size=8)
    examples = TrainingExamples(
        history=rng.integers(0, n + 1, (32, 3)).astype(np.int32),
        user=rng.integers(0, 4, 32).astype(np.int32),
        item=rng.integers(0, n, 32).astype(np.int32),
    )
    result = train_two_tower(cfg, content, 4, examples)
    folder.mkdir(parents=True)
    (folder / "items.json").write_text(json.dumps(items))
    (folder / "scoring.json").write_text(json.dumps(result.layout.to_json()))
    np.save(folder / "item_embeddings.npy", result.item_matrix())
    export_numpy_item_tower(result.item_tower, content, asdict(cfg), folder / ITEM_TOWER_FILE)
    np.save(folder / CAPTIONS_FILE, content.caption.astype(np.float16))
    (folder / SEARCH_TEXTS_FILE).write_text(json.dumps([f"video {v} about goals and dinner" for v in items]))
    # v1 has a summary (and its strip beside the models, as in a workdir); the others none
    (folder / "summaries.json").write_text(json.dumps({"v1": {"timestamps_s": [0.5, 2.0], "strip": "abc.jpg"}}))
    from recsys.frames import summary_strip

    (folder.parent.parent / "summaries").mkdir(exist_ok=True)
    (folder.parent.parent / "summaries" / "abc.jpg").write_bytes(summary_strip(np.zeros((2, 16, 16, 3), np.uint8)))


@pytest.fixture(scope="module")
def api_url(redis_url, tmp_path_factory):
    import redis

    from recsys.text_onnx import export_text_onnx

    models = tmp_path_factory.mktemp("fuzz-work") / "models"
    _tiny_model(models / "ver1", ["v1", "v2", "p1"])

    ns = f"test-fuzz-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    publish_version(
        client,
        ns,
        "ver1",
        TopK(["u1"], [["v1", "v2"]], [[0.9, 0.1]]),
        (["p1", "v1"], [0.6, 0.4]),
        600,
        similar=TopK(["v1"], [["v2"]], [[0.5]]),
        by_category={"cooking": (["v1"], [1.0])},
    )
    client.close()
    settings = Settings(
        redis_url=redis_url, namespace=ns, model_root=str(models), text_encoder_dir=str(export_text_onnx())
    )
    with ServerThread(create_app(settings)) as srv:
        yield srv.url
    _delete_namespace(redis_url, ns)


# The schema is the app's own (static: building it needs no Redis); the calls go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, api_url):
    case.call_and_validate(base_url=api_url, checks=[not_a_server_error])
