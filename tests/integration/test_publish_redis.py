"""Publishing against the real Redis server."""

import json

import pytest
import redis

from cache import keys
from cache.writer import PublishError, TopK, publish_version
from pipelines.publish import popular_items


def _topk():
    return TopK(user_ids=["u1", "u2"], item_ids=[["v3", "v1"], ["v2"]], scores=[[0.9, 0.5], [0.7]])


def test_publish_writes_versioned_keys_then_flips(redis_client, namespace):
    meta = publish_version(redis_client, namespace, "ver1", _topk(), (["v1", "v2"], [0.6, 0.4]), ttl_seconds=600)
    assert meta["users"] == 2 and meta["previous_version"] is None
    assert redis_client.get(keys.live_key(namespace)) == b"ver1"
    assert keys.decode_items(redis_client.get(keys.user_key(namespace, "ver1", "u1"))) == [
        ("v3", pytest.approx(0.9)),
        ("v1", pytest.approx(0.5)),
    ]
    assert [v for v, _ in keys.decode_items(redis_client.get(keys.popular_key(namespace, "ver1")))] == ["v1", "v2"]
    assert 0 < redis_client.ttl(keys.user_key(namespace, "ver1", "u2")) <= 600
    assert redis_client.ttl(keys.live_key(namespace)) == -1  # the pointer itself never expires
    assert json.loads(redis_client.get(keys.meta_key(namespace, "ver1")))["users"] == 2


def test_republish_is_idempotent_and_new_version_flips(redis_client, namespace):
    publish_version(redis_client, namespace, "ver1", _topk(), (["v1"], [1.0]), 600)
    before = redis_client.get(keys.user_key(namespace, "ver1", "u1"))
    publish_version(redis_client, namespace, "ver1", _topk(), (["v1"], [1.0]), 600)
    assert redis_client.get(keys.user_key(namespace, "ver1", "u1")) == before
    meta = publish_version(redis_client, namespace, "ver2", _topk(), (["v1"], [1.0]), 600)
    assert meta["previous_version"] == "ver1"
    assert redis_client.get(keys.live_key(namespace)) == b"ver2"


def test_failed_verification_leaves_previous_version_live(redis_url, redis_client, namespace, monkeypatch):
    """The real write, but one key of the version lost right after it (as an eviction would drop
    it) while Redis reported success: only the verification can notice."""
    from cache import writer

    publish_version(redis_client, namespace, "good", _topk(), (["v1"], [1.0]), 600)
    real_write = writer.write_batches

    def lossy(client, batches):  # type: ignore[no-untyped-def]
        real_write(client, batches)
        assert client.delete(keys.user_key(namespace, "bad", "u2")) == 1

    monkeypatch.setattr(writer, "write_batches", lossy)
    with pytest.raises(PublishError, match="verification failed: 2 of 3 keys"):
        publish_version(redis_client, namespace, "bad", _topk(), (["v1"], [1.0]), 600)
    assert redis_client.get(keys.live_key(namespace)) == b"good"


def test_a_refused_set_is_a_publish_error(redis_client, namespace, monkeypatch):
    """A SET that Redis refuses (here: out of memory, as with maxmemory and noeviction) fails the
    publish with Redis's reason and leaves the previous version live."""
    publish_version(redis_client, namespace, "good", _topk(), (["v1"], [1.0]), 600)
    old = redis_client.config_get("maxmemory")["maxmemory"]
    policy = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        redis_client.config_set("maxmemory-policy", "noeviction")
        redis_client.config_set("maxmemory", 1)  # every write is over the limit
        with pytest.raises(PublishError, match="OOM"):
            publish_version(redis_client, namespace, "full", _topk(), (["v1"], [1.0]), 600)
    finally:
        redis_client.config_set("maxmemory", old)
        redis_client.config_set("maxmemory-policy", policy)
    assert redis_client.get(keys.live_key(namespace)) == b"good"


def test_redis_down_is_a_publish_error(namespace):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(PublishError, match="Redis error"):
        publish_version(dead, namespace, "v", _topk(), (["v1"], [1.0]), 600)


def test_popular_items_window_and_ties():
    import pandas as pd

    ev = pd.DataFrame({"video_id": ["a", "b", "b", "c", "c", "old"], "ts": [90, 91, 92, 93, 94, 1]})
    # window of 1 day before t=100 s covers everything; "old" has 1 view like "a": tie broken by id
    ids, scores = popular_items(ev, end_epoch_s=100, window_days=1, k=3)
    assert ids == ["b", "c", "a"] and scores == pytest.approx([2 / 6, 2 / 6, 1 / 6])


def test_similar_and_category_lists_are_published_with_the_version(redis_client, namespace):
    similar = TopK(user_ids=["v1", "v2"], item_ids=[["v2"], ["v1"]], scores=[[0.8], [0.8]])
    meta = publish_version(
        redis_client,
        namespace,
        "ver1",
        _topk(),
        (["v1", "v2"], [0.6, 0.4]),
        600,
        similar=similar,
        by_category={"cooking": (["v2"], [1.0])},
    )
    assert meta["similar"] == 2 and meta["categories"] == 1 and meta["keys"] == 6
    assert keys.decode_items(redis_client.get(keys.similar_key(namespace, "ver1", "v1")))[0][0] == "v2"
    got = keys.decode_items(redis_client.get(keys.category_popular_key(namespace, "ver1", "cooking")))
    assert got == [("v2", 1.0)]
    assert meta["bytes_per_user_list"] > 0


def test_old_versions_are_unlinked_after_the_grace_period(redis_client, namespace):
    pop = (["v1"], [1.0])
    publish_version(redis_client, namespace, "old", _topk(), pop, 600, now=1000.0, grace_seconds=100)
    publish_version(redis_client, namespace, "mid", _topk(), pop, 600, now=1050.0, grace_seconds=100)
    # "old" is past the grace period but is the rollback target of "mid": kept
    assert redis_client.exists(keys.user_key(namespace, "old", "u1"))
    meta = publish_version(redis_client, namespace, "new", _topk(), pop, 600, now=1200.0, grace_seconds=100)
    assert meta["removed_versions"] == ["old"]
    assert not redis_client.exists(keys.user_key(namespace, "old", "u1"), keys.popular_key(namespace, "old"))
    assert redis_client.exists(keys.user_key(namespace, "mid", "u1"))  # the rollback target stays
    assert [v.decode() for v in redis_client.zrange(keys.versions_key(namespace), 0, -1)] == ["mid", "new"]
    # republishing the live version keeps "mid" as the rollback target, even past the grace period
    meta = publish_version(redis_client, namespace, "new", _topk(), pop, 600, now=5000.0, grace_seconds=100)
    assert meta["removed_versions"] == [] and redis_client.exists(keys.user_key(namespace, "mid", "u1"))


def test_gate_holds_back_a_worse_model():
    from pipelines.publish import gate_decision

    def rep(v, protocol="global_time"):
        return {"protocol": protocol, "metrics": {"two_tower": {"ndcg@10": v}}}

    assert gate_decision(rep(0.30), rep(0.31), "ndcg@10", 0.0)[0] is False
    ok, why = gate_decision(rep(0.30), rep(0.31), "ndcg@10", 0.02)
    assert ok and "vs live" in why
    assert gate_decision(rep(0.30), None, "ndcg@10", 0.0) == (True, "no live model with a report to compare against")
    assert gate_decision(rep(0.1), rep(0.5, "user_time"), "ndcg@10", 0.0)[0] is True  # not comparable
    assert "below the live model's 0.3100" in gate_decision(rep(0.30), rep(0.31), "ndcg@10", 0.0)[1]


def test_rollback_moves_live_to_the_previous_version(redis_client, namespace):
    from cache.writer import rollback

    publish_version(redis_client, namespace, "a", _topk(), (["v1"], [1.0]), 600, now=100.0)
    publish_version(redis_client, namespace, "b", _topk(), (["v1"], [1.0]), 600, now=200.0)
    assert rollback(redis_client, namespace) == {"namespace": namespace, "from": "b", "to": "a"}
    assert redis_client.get(keys.live_key(namespace)) == b"a"
    redis_client.unlink(keys.meta_key(namespace, "b"))  # b's keys gone: nothing to roll back to
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(redis_client, namespace)


def test_write_if_live_writes_only_into_the_live_version_with_its_ttl(redis_client, namespace):
    from cache.writer import write_if_live

    publish_version(redis_client, namespace, "ver1", _topk(), (["v1"], [1.0]), ttl_seconds=600)
    value = keys.encode_items(["v9"], [0.5])
    user = lambda u: keys.user_key(namespace, "ver1", u)  # noqa: E731
    assert write_if_live(redis_client, namespace, "ver1", {user("u7"): value, user("u1"): value}) == 2
    assert redis_client.get(keys.user_key(namespace, "ver1", "u7")) == value
    ttl, meta_ttl = redis_client.pttl(user("u7")), redis_client.pttl(keys.meta_key(namespace, "ver1"))
    assert 0 < ttl and abs(ttl - meta_ttl) <= 50  # expires with the version (read 1-2 ms apart)
    publish_version(redis_client, namespace, "ver2", _topk(), (["v1"], [1.0]), ttl_seconds=600)
    assert write_if_live(redis_client, namespace, "ver1", {user("u8"): value}) == -1  # ver2 is live now
    assert not redis_client.exists(keys.user_key(namespace, "ver1", "u8"))
    redis_client.delete(keys.meta_key(namespace, "ver2"))
    assert write_if_live(redis_client, namespace, "ver2", {keys.user_key(namespace, "ver2", "u8"): value}) == -2
