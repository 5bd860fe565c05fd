import math

import numpy as np
import pytest

from recsys.metrics import evaluate_rankings, mean_and_stderr, ndcg_at_k, recall_at_k, topk_with_exclusions


def test_recall_and_ndcg_hand_computed():
    ranked = [5, 1, 7, 2]
    relevant = {1, 2, 9}
    # hits at ranks 2 and 4 among the top 4; 3 relevant -> recall 2/3
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    # DCG = 1/log2(3) + 1/log2(5); IDCG (3 relevant, k=4) = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    # k=1: nothing relevant at rank 1
    assert recall_at_k(ranked, relevant, 1) == 0.0
    assert ndcg_at_k([1], {1}, 10) == 1.0
    with pytest.raises(ValueError, match="no relevant items"):
        recall_at_k(ranked, set(), 4)


def test_evaluate_rankings_mean_and_stderr():
    ranked = np.array([[1, 2], [3, 4]])
    out = evaluate_rankings(ranked, [{1}, {9}], k=2)
    # user 1 recall 1, user 2 recall 0 -> mean 0.5, stderr = std([1,0], ddof=1)/sqrt(2) = 0.5
    assert out["recall@2"] == 0.5 and out["recall@2_se"] == pytest.approx(0.5)
    assert out["users"] == 2
    assert mean_and_stderr([2.0]) == (2.0, 0.0)


def test_topk_with_exclusions_exact():
    users = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    items = np.array([[3.0, 0.0], [2.0, 1.0], [0.0, 5.0], [1.0, 1.0]], np.float32)
    # user 0 scores: [3, 2, 0, 1]; exclude item 0 -> 1 (2), 3 (1)
    # user 1 scores: [0, 1, 5, 1]; nothing excluded -> 2 (5), then 1 and 3 tie at 1
    idx, scores = topk_with_exclusions(users, items, 2, [np.array([0]), np.array([], int)], block_size=1)
    assert idx[0].tolist() == [1, 3] and scores[0].tolist() == [2.0, 1.0]
    assert idx[1, 0] == 2 and scores[1].tolist() == [5.0, 1.0]


def test_topk_marks_missing_when_everything_excluded():
    idx, scores = topk_with_exclusions(np.ones((1, 1)), np.ones((2, 1)), 2, [np.array([0, 1])])
    assert idx.tolist() == [[-1, -1]] and np.isneginf(scores).all()


def test_hitrate_and_mrr_hand_computed():
    from recsys.metrics import hit_rate_at_k, mrr_at_k

    # first relevant item (2) at rank 3 -> MRR 1/3; within k=2 no hit
    assert mrr_at_k([5, 1, 2], {2, 9}, 3) == pytest.approx(1 / 3)
    assert mrr_at_k([5, 1, 2], {2, 9}, 2) == 0.0
    assert hit_rate_at_k([5, 1, 2], {2}, 3) == 1.0 and hit_rate_at_k([5, 1, 2], {2}, 2) == 0.0
    out = evaluate_rankings(np.array([[5, 1, 2]]), [{2}], k=3)
    assert out["hitrate@3"] == 1.0 and out["mrr@3"] == pytest.approx(1 / 3)


def test_beyond_accuracy_hand_computed():
    from recsys.metrics import beyond_accuracy

    counts = np.array([6.0, 2.0, 0.0, 0.0])  # 8 train events over 4 items
    ranked = np.array([[0, 1], [0, 2]])
    out = beyond_accuracy(ranked, counts, k=2)
    assert out["coverage@2"] == 3 / 4  # items 0, 1, 2
    # p = (count + 1) / (8 + 4): item 0 -> 7/12, item 1 -> 3/12, item 2 -> 1/12
    expected = np.mean([-np.log2(7 / 12), -np.log2(3 / 12), -np.log2(7 / 12), -np.log2(1 / 12)])
    assert out["novelty@2"] == pytest.approx(expected)
    assert out["popularity@2"] == pytest.approx((6 + 2 + 6 + 0) / 4)


@pytest.mark.parametrize("n_items", [50, 9000, 20_000])
def test_topk_matches_a_full_sort(n_items):
    """Both selection paths (50 items < 4k: all candidates; else threshold from group maxima)."""
    rng = np.random.default_rng(n_items)
    users = rng.normal(size=(300, 8)).astype(np.float32)
    items = rng.normal(size=(n_items, 8)).astype(np.float32)
    exclude = [rng.integers(0, n_items, rng.integers(0, 30)) for _ in range(300)]
    exclude[7] = np.arange(n_items - 3)  # nearly everything excluded: a short list padded with -1
    exclude[8] = np.arange(n_items - n_items // 50)  # all but one group excluded: no finite threshold
    k = 20
    for workers, block in ((1, 2048), (2, 64)):
        idx, sc = topk_with_exclusions(users, items, k, exclude, block_size=block, workers=workers)
        for u in range(300):
            s = users[u] @ items.T
            s[exclude[u]] = -np.inf
            order = np.lexsort((np.arange(n_items), -s))[:k]
            expected = np.where(np.isfinite(s[order]), order, -1)
            np.testing.assert_array_equal(idx[u], expected)
            np.testing.assert_allclose(sc[u][expected >= 0], s[order][expected >= 0], rtol=1e-5, atol=1e-5)
    assert (idx[7, 3:] == -1).all() and (idx[7, :3] >= n_items - 3).all()


def test_topk_equal_scores_lower_index_first():
    from recsys.metrics import topk_from_scores

    idx, sc = topk_from_scores(np.array([[1.0, 3.0, 3.0, 2.0, 3.0]], np.float32), 3)
    assert idx.tolist() == [[1, 2, 4]] and sc.tolist() == [[3.0, 3.0, 3.0]]
    # at the cut too, on the threshold path (5,000 items >= 4k): 9 items score 1, then 991 tie at 0
    rng = np.random.default_rng(0)
    scores = np.full((3, 5000), -1.0, np.float32)
    scores[:, 4000:] = 0.0
    scores[:, 3000 + rng.choice(1000, 9, replace=False)] = 1.0
    scores[1, 4000:4500] = -1.0
    scores[1, 4500] = -0.0  # the same score as 0.0: the first of the ties in row 1
    scores[2, 4000] = np.nan  # never selected: row 2's first tie is 4001
    idx, sc = topk_from_scores(scores.copy(), 10)
    for r, first_tie in enumerate((4000, 4500, 4001)):
        best = np.flatnonzero(scores[r] == 1.0).tolist()
        assert idx[r].tolist() == [*best, first_tie] and sc[r].tolist() == [1.0] * 9 + [0.0]


def test_ann_index_recall_and_exclusions():
    from recsys.ann import IVFIndex, recall_against_exact

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16))
    items = (centers[rng.integers(0, 20, 4000)] + 0.3 * rng.normal(size=(4000, 16))).astype(np.float32)
    users = (centers[rng.integers(0, 20, 200)] + 0.3 * rng.normal(size=(200, 16))).astype(np.float32)
    exclude = [rng.integers(0, 4000, 10) for _ in range(200)]
    exact, _ = topk_with_exclusions(users, items, 20, exclude)
    approx, scores = IVFIndex(items, nprobe=8).search(users, 20, exclude)
    assert recall_against_exact(approx, exact) > 0.9
    assert all(not set(a.tolist()) & set(e.tolist()) for a, e in zip(approx, exclude, strict=True))
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_per_user_ndcg_matches_the_mean():
    from recsys.metrics import evaluate_rankings, per_user_ndcg

    ranked = np.array([[1, 2, 3], [3, 2, 1]])
    relevant = [{1}, {1, 2}]
    per = per_user_ndcg(ranked, relevant, 3)
    # user 0: hit at rank 1 -> 1.0; user 1: hits at ranks 2 and 3 -> (1/log2 3 + 1/2) / (1 + 1/log2 3)
    expected_1 = (1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3))
    np.testing.assert_allclose(per, [1.0, expected_1])
    assert per.mean() == pytest.approx(evaluate_rankings(ranked, relevant, 3)["ndcg@3"])
    # at random, with -1 padding, lists longer than k and more relevant items than k: as ndcg_at_k
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(30)[:12] for _ in range(200)])
    ranked[rng.random(ranked.shape) < 0.1] = -1
    relevant = [set(rng.choice(35, rng.integers(1, 15), replace=False).tolist()) for _ in range(200)]
    want = [ndcg_at_k(r.tolist(), rel, 10) for r, rel in zip(ranked, relevant, strict=True)]
    np.testing.assert_allclose(per_user_ndcg(ranked, relevant, 10), want, rtol=1e-12)
    with pytest.raises(ValueError, match="no relevant"):
        per_user_ndcg(ranked[:2], [{1}, set()], 10)


def test_paired_bootstrap_hand_computed_cases():
    """Two users with differences 0 and 1: a resampled mean is 0, 0.5 or 1 with probabilities 1/4,
    1/2, 1/4, so the central 95% runs from 0 to 1. Three users with differences 0, 0, 3: the mean of
    a resample is the number of 3s drawn (Binomial(3, 1/3)): P(0) = 8/27 > 2.5%, P(3) = 1/27 > 2.5%,
    so the interval is [0, 3] around a mean of 1."""
    from recsys.metrics import paired_bootstrap

    two = paired_bootstrap(np.array([0.5, 1.0]), np.array([0.5, 0.0]))
    assert two["mean_diff"] == pytest.approx(0.5) and (two["lo"], two["hi"]) == (0.0, 1.0) and two["users"] == 2
    three = paired_bootstrap(np.array([0.0, 0.2, 3.1]), np.array([0.0, 0.2, 0.1]))
    assert three["mean_diff"] == pytest.approx(1.0)
    assert three["lo"] == pytest.approx(0.0) and three["hi"] == pytest.approx(3.0)
    same = paired_bootstrap(np.full(50, 0.3), np.full(50, 0.1))
    assert (same["lo"], same["hi"]) == pytest.approx((0.2, 0.2))
    # seeded: the same call gives the same interval
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200)
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="differ in shape"):
        paired_bootstrap(np.zeros(3), np.zeros(2))
    assert paired_bootstrap(np.zeros(0), np.zeros(0))["users"] == 0
