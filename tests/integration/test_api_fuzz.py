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


@pytest.fixture(scope="module")
def api_url(redis_url):
    import redis

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
    with ServerThread(create_app(Settings(redis_url=redis_url, namespace=ns))) as srv:
        yield srv.url
    _delete_namespace(redis_url, ns)


# The schema is the app's own (static: building it needs no Redis); the calls go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, api_url):
    case.call_and_validate(base_url=api_url, checks=[not_a_server_error])
