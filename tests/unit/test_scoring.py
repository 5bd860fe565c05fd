"""Score layout and freshness (recsys.scoring), and how new videos are scored (recsys.model)."""

import numpy as np
import pandas as pd
import pytest

from recsys.scoring import FRESHNESS_BUCKETS, ScoreLayout, age_buckets

HOUR = 3600.0


def test_age_buckets_double_from_six_hours():
    hours = np.array([-5, 0, 5.9, 6, 17.9, 18, 41.9, 42, 1e9, np.nan])
    assert age_buckets(hours).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, FRESHNESS_BUCKETS - 1, 0]


def test_freshness_scores_and_folding():
    table = tuple(float(-b) for b in range(FRESHNESS_BUCKETS))  # older, lower
    layout = ScoreLayout(dim=2, bias=True, content_dim=1, freshness=table, freshness_per_day=-0.5)
    assert layout.total == 4 and layout.bias_col == 2 and layout.content_cols == slice(3, 4)
    now = 1_000_000.0
    birth = np.array([now - 1 * HOUR, now - 20 * HOUR, np.nan, now + 5 * HOUR])
    f = layout.freshness_scores(np.array([now]), birth)[0]
    # 1 h: bucket 0, 1/24 day; 20 h: bucket 2; unknown birth and published after the reference
    # time: new (age 0)
    np.testing.assert_allclose(f, [0 - 0.5 / 24, -2 - 0.5 * 20 / 24, 0.0, 0.0], rtol=1e-6)
    # born at their first event: item 1 (first watched 20 h ago) as before; item 3, first watched
    # after the reference time, was not in the catalogue yet (-inf); a never-watched one is new
    from_event = np.array([False, True, True, True])
    g = layout.freshness_scores(np.array([now, now - 2 * HOUR]), birth, from_event)
    np.testing.assert_allclose(g[0], [f[0], f[1], 0.0, -np.inf], rtol=1e-6)
    # two hours earlier: item 1 was 18 h old; item 0, published an hour before now, was not out
    # yet: new
    assert g[1, 1] == pytest.approx(-2 - 0.5 * 18 / 24) and g[1, 0] == 0.0 and g[1, 2] == 0.0
    items = np.ones((4, 4), np.float32)
    folded = layout.fold_freshness(items, birth, now)
    np.testing.assert_allclose(folded[:, 2], 1.0 + f, rtol=1e-6)
    np.testing.assert_array_equal(folded[:, [0, 1, 3]], items[:, [0, 1, 3]])
    assert items[0, 2] == 1.0  # a copy
    assert ScoreLayout.from_json(layout.to_json()) == layout
    plain = ScoreLayout(dim=2)
    assert plain.freshness_scores(np.array([now]), birth) is None
    np.testing.assert_array_equal(plain.fold_freshness(items, birth, now), items)


def test_item_birth_is_publication_or_first_event():
    from pipelines.fitting import item_birth, reference_times

    events = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [0, 1, 1], "ts": [100, 50, 300]})
    published = np.array([10.0, np.nan, 5.0, np.nan])
    birth, from_event = item_birth(events, published, 4)
    np.testing.assert_array_equal(birth[:3], [10.0, 50.0, 5.0])
    assert np.isnan(birth[3])
    assert from_event.tolist() == [False, True, False, False]
    held_out = pd.DataFrame({"user_idx": [1, 1], "item_idx": [2, 3], "ts": [400, 350]})
    # user 1 is judged when they came back (first held-out event); user 0 at their last training event
    np.testing.assert_array_equal(reference_times(events, held_out, "user_time", 2), [100.0, 350.0])
    np.testing.assert_array_equal(reference_times(events, held_out, "global_time", 2), [350.0, 350.0])


def test_the_first_event_of_a_video_does_not_teach_that_new_videos_are_hot():
    """Videos without a publication time are born at their first event, so each is watched at age
    0 once by construction; that event's freshness goes to a bucket of its own, never scored."""
    from recsys.model import ItemContent, TrainingExamples, TwoTowerConfig
    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(0)
    n_items, n_users = 40, 30
    # each item: one first event, then nothing until a day later: nothing is watched in its first hours
    first = rng.uniform(0, 100 * 86400, n_items)
    item = np.concatenate([np.arange(n_items)] * 8)
    ts = np.concatenate([first] + [first + 86400 * (1 + rng.uniform(0, 30, n_items)) for _ in range(7)])
    user = rng.integers(0, n_users, len(item))
    examples = TrainingExamples(
        np.full((len(item), 2), n_items, np.int32), user.astype(np.int32), item.astype(np.int32), ts=ts
    )
    zeros = np.zeros(n_items, np.float32)
    content = ItemContent(
        np.zeros((n_items, 4), np.float32),
        zeros,
        rng.normal(size=(n_items, 4)).astype(np.float32),
        zeros + 1,
        np.zeros((n_items, 4), np.float32),
        zeros,
    )
    cfg = TwoTowerConfig(
        embedding_dim=8, id_dim=4, hidden_dim=8, max_history=2, epochs=30, batch_size=64, uniform_negatives=0
    )
    result = train_two_tower(cfg, content, n_users, examples, item_birth=first, birth_from_event=np.ones(n_items, bool))
    table = np.asarray(result.layout.freshness)
    # under 6 hours after the first event (bucket 0) nothing else happens: no boost there
    assert table[0] <= table[age_buckets(np.array([48.0]))[0]] + 1e-3


def _clustered_catalogue(seed: int = 0):
    """4 topics x 10 videos (captions near their topic's centre); the last 2 of each topic have no
    events (new videos); 48 users, each watching 5 of their topic's 8 old videos over a week."""
    from recsys.model import ItemContent

    rng = np.random.default_rng(seed)
    topics, per_topic, dim = 4, 10, 16
    centres = rng.normal(size=(topics, dim))
    topic_of = np.repeat(np.arange(topics), per_topic)
    caption = (centres[topic_of] + 0.3 * rng.normal(size=(topics * per_topic, dim))).astype(np.float32)
    n = topics * per_topic
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    content = ItemContent(np.zeros((n, 4), np.float32), zeros, caption, ones, np.zeros((n, dim), np.float32), zeros)
    new = np.array([i % per_topic >= 8 for i in range(n)])
    users, items, ts = [], [], []
    for u in range(48):
        t = u % topics
        old = np.flatnonzero((topic_of == t) & ~new)
        for j, i in enumerate(rng.choice(old, 5, replace=False)):
            users.append(u)
            items.append(int(i))
            ts.append(1_700_000_000 + u * 600 + j * 86400)
    events = pd.DataFrame({"user_idx": users, "item_idx": items, "ts": ts})
    return content, topic_of, new, events


def test_a_new_video_is_ranked_at_least_as_well_as_content_only_ranks_it():
    """The cold-scoring guarantee on a small constructed case: for every user, (1) the model orders
    the videos nobody has watched at least as well as the content-only baseline does (NDCG@2 of
    the user's topic's new videos among all new videos), and (2) ranks each new video of their
    topic above every video of the other topics, old and popular ones included."""
    from pipelines.fitting import item_birth, make_examples
    from recsys.baselines import fit_content_only
    from recsys.metrics import evaluate_rankings
    from recsys.model import TwoTowerConfig, last_history
    from recsys.model.training import train_two_tower

    content, topic_of, new, events = _clustered_catalogue()
    n_items, n_users = len(topic_of), 48
    cfg = TwoTowerConfig(embedding_dim=16, id_dim=8, hidden_dim=32, max_history=5, epochs=15, batch_size=32)
    examples = make_examples(events, n_items, cfg.max_history)
    birth, from_event = item_birth(events, None, n_items)
    model = train_two_tower(cfg, content, n_users, examples, item_birth=birth, birth_from_event=from_event)
    users = np.arange(n_users)
    hist, weight = last_history(
        events["user_idx"].to_numpy(), events["item_idx"].to_numpy(), events["ts"].to_numpy(), n_users, 5, n_items
    )
    watched = [events.loc[events["user_idx"] == u, "item_idx"].to_numpy() for u in users]
    now = np.full(n_users, float(events["ts"].max()))
    old = np.flatnonzero(~new)
    relevant = [set(np.flatnonzero(new & (topic_of == u % 4)).tolist()) for u in users]
    only_new = [np.union1d(w, old) for w in watched]
    model_new = model.rank(hist, users.astype(np.int32), weight, only_new, 8, now)
    content_new = fit_content_only(events, n_users, content)(users, only_new, 8)
    ndcg_model = evaluate_rankings(model_new, relevant, 2)["ndcg@2"]
    ndcg_content = evaluate_rankings(content_new, relevant, 2)["ndcg@2"]
    assert ndcg_model >= ndcg_content - 1e-9 and ndcg_model > 0.9
    ranked = model.rank(hist, users.astype(np.int32), weight, watched, n_items, now)
    for u in users:
        pos = {int(i): r for r, i in enumerate(ranked[u]) if i >= 0}
        worst_new_of_topic = max(pos[i] for i in relevant[u])
        best_other_topic = min(r for i, r in pos.items() if topic_of[i] != u % 4)
        assert worst_new_of_topic < best_other_topic, f"user {u}"


@pytest.mark.parametrize("n_items", [5, 30, 200])
def test_content_prior_keeps_content_similarities(n_items):
    """The SVD-reduced prior's dot products approximate the content-only baseline's (exactly when
    the content has fewer directions than the prior's width), for small catalogues too."""
    from recsys.baselines import content_vectors
    from recsys.model import ItemContent, content_prior_vectors

    rng = np.random.default_rng(1)
    ones = np.ones(n_items, np.float32)
    low_rank = rng.normal(size=(n_items, 6)) @ rng.normal(size=(6, 40))
    content = ItemContent(
        np.zeros((n_items, 4), np.float32),
        ones * 0,
        low_rank.astype(np.float32),
        ones,
        rng.normal(size=(n_items, 40)).astype(np.float32),
        ones * 0,
    )
    prior = content_prior_vectors(content, 16)
    full = content_vectors(content)
    assert prior.shape == (n_items, 16)
    np.testing.assert_allclose(prior @ prior.T, full @ full.T, atol=1e-4)


def test_new_video_rows_scale_the_embedding_and_lift_the_bias_and_keep_similarity():
    layout = ScoreLayout(dim=2, bias=True, content_dim=1, new_video_scale=0.25, new_video_offset=1.5, new_video_prior=2)
    rows = np.array([[0.6, 0.8, 0.1, 0.5], [1.0, 0.0, -0.2, 0.3]], np.float32)
    new = layout.new_video_rows(rows)
    np.testing.assert_allclose(new, [[0.15, 0.2, 1.6, 1.0], [0.25, 0.0, 1.3, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(rows[0], [0.6, 0.8, 0.1, 0.5])  # a copy
    # similar videos are judged on the embeddings' directions, scaled or not
    np.testing.assert_allclose(layout.similarity_vectors(new), rows[:, :2], rtol=1e-6)
    assert ScoreLayout.from_json(layout.to_json()) == layout
    assert ScoreLayout.from_json({"dim": 2}).new_video_scale == 1.0  # a version from before
    with pytest.raises(ValueError, match="new_video_scale"):
        ScoreLayout(dim=2, new_video_scale=0.0)
    with pytest.raises(ValueError, match="new_video_prior"):
        ScoreLayout(dim=2, new_video_prior=0.5)


def test_combined_rows_score_the_mean_of_the_members_scores():
    from recsys.scoring import combine_members

    rng = np.random.default_rng(0)
    dim, members = 4, 3
    # each member: embedding columns, a bias column (query side 1), two content columns (item side shared)
    content = rng.normal(size=(5, 2))
    items = [np.hstack([rng.normal(size=(5, dim)), rng.normal(size=(5, 1)), content]) for _ in range(members)]
    queries = [np.hstack([rng.normal(size=(2, dim)), np.ones((2, 1)), rng.normal(size=(2, 2))]) for _ in range(members)]
    combined = combine_members(queries, dim, query=True) @ combine_members(items, dim, query=False).T
    np.testing.assert_allclose(
        combined, np.mean([q @ i.T for q, i in zip(queries, items, strict=True)], axis=0), atol=1e-5
    )
    np.testing.assert_array_equal(combine_members(items[:1], dim, query=True), items[0].astype(np.float32))


@pytest.mark.parametrize("n_new", [0, 7, 40])
def test_new_video_variants_rank_as_one_ranking_per_layout(n_new):
    from dataclasses import replace

    from recsys.retrieval import Catalogue, rank, rank_new_video_variants

    rng = np.random.default_rng(n_new)
    n_items, n_users, dim, content_dim = 40, 30, 3, 2
    layout = ScoreLayout(dim=dim, bias=True, content_dim=content_dim, freshness=tuple(np.linspace(1, -1, 20)))
    rows = rng.normal(size=(n_items, layout.total)).astype(np.float32)
    queries = rng.normal(size=(n_users, layout.total)).astype(np.float32)
    queries[:, layout.bias_col] = 1.0
    birth = rng.uniform(0, 30 * 86400, n_items)
    birth[:3] = np.nan  # never watched, no publication time
    from_event = rng.random(n_items) < 0.5
    now = rng.uniform(10 * 86400, 40 * 86400, n_users)  # some videos born after a user's time
    new = np.zeros(n_items, bool)
    new[rng.choice(n_items, n_new, replace=False)] = True
    exclude = [rng.choice(n_items, rng.integers(0, 8), replace=False) for _ in range(n_users)]
    exclude[0] = np.arange(n_items - 5)  # five left: the list is padded with -1
    layouts = [
        replace(layout, new_video_scale=s, new_video_offset=o, new_video_prior=p)
        for s, o, p in [(1.0, 0.0, 1.0), (0.3, 1.5, 1.0), (0.1, 3.0, 4.0)]
    ]
    catalogue = Catalogue(rows, layout, birth, from_event)
    got = rank_new_video_variants(queries, catalogue, new, layouts, 10, exclude, now=now, memory_budget_bytes=2000)
    for variant, ranked in zip(layouts, got, strict=True):
        served = rows.copy()
        served[new] = variant.new_video_rows(rows[new])
        want = rank(queries, Catalogue(served, variant, birth, from_event), 10, exclude, now=now)[0]
        np.testing.assert_array_equal(ranked, want)
    assert (got[0][0, 5:] == -1).all() and (got[0][0, :5] >= 0).all()
    with pytest.raises(ValueError, match="only in how new videos"):
        rank_new_video_variants(queries, catalogue, new, [replace(layout, bias=False)], 10, exclude)


def test_query_variants_rank_as_one_ranking_per_scaled_query():
    from recsys.retrieval import Catalogue, rank, rank_query_variants

    rng = np.random.default_rng(3)
    n_items, n_users = 50, 25
    layout = ScoreLayout(dim=3, bias=True, content_dim=4, freshness=tuple(np.linspace(1, -1, 20)))
    rows = rng.normal(size=(n_items, layout.total)).astype(np.float32)
    queries = rng.normal(size=(n_users, layout.total)).astype(np.float32)
    birth, now = rng.uniform(0, 30 * 86400, n_items), rng.uniform(10 * 86400, 40 * 86400, n_users)
    catalogue = Catalogue(rows, layout, birth, rng.random(n_items) < 0.5)
    exclude = [rng.choice(n_items, rng.integers(0, 10), replace=False) for _ in range(n_users)]
    factors = (1.0, 0.25, 4.0)
    got = rank_query_variants(
        queries, catalogue, layout.content_cols, factors, 10, exclude, now=now, memory_budget_bytes=3000
    )
    for factor, ranked in zip(factors, got, strict=True):
        scaled = queries.copy()
        scaled[:, layout.content_cols] *= factor
        np.testing.assert_array_equal(ranked, rank(scaled, catalogue, 10, exclude, now=now)[0])
