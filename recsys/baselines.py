"""Baselines scored through the same top-k and metric code as the two-tower.

Each ``fit_*`` returns a scorer ``(user indices [n], exclude lists, k) -> ranked items [n, k]``.
* popularity: training watch count.
* item_knn: item-item cosine over the binary user x item training matrix; a user's score for
  item i is the sum of i's similarities to the user's training items.
* als: implicit-feedback matrix factorisation (the ``implicit`` package); ``tune_als`` picks
  factors and regularisation by NDCG@10 on a validation split carved from training events.
* content_only: a user's profile is the mean of their training items' content vectors (each
  present modality L2-normalised, then concatenated); score = dot product.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys.metrics import topk_from_scores, topk_with_exclusions
from recsys.model import ItemContent

Scorer = Callable[[np.ndarray, list[np.ndarray], int], np.ndarray]


def _user_item_matrix(train: pd.DataFrame, num_users: int, num_items: int):  # type: ignore[no-untyped-def]
    from scipy import sparse

    pairs = train[["user_idx", "item_idx"]].drop_duplicates()
    ones = np.ones(len(pairs), np.float32)
    return sparse.csr_matrix((ones, (pairs["user_idx"], pairs["item_idx"])), shape=(num_users, num_items))


def fit_popularity(train: pd.DataFrame, num_items: int) -> Scorer:
    counts = np.bincount(train["item_idx"].to_numpy(), minlength=num_items).astype(np.float32)
    counts -= np.arange(num_items, dtype=np.float32) * 1e-6  # deterministic tie-break by index

    def score(users: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
        return topk_with_exclusions(np.ones((len(users), 1), np.float32), counts[:, None], k, exclude)[0]

    return score


def fit_item_knn(train: pd.DataFrame, num_users: int, num_items: int, block_size: int = 1024) -> Scorer:
    """scores = (X_u D^-1) X^T X D^-1 with D = diag(item column norms): sum of cosine similarities."""
    from scipy import sparse

    x = _user_item_matrix(train, num_users, num_items)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inv = sparse.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32))
    xn = (x @ inv).tocsr()

    def score(users: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
        out = np.empty((len(users), min(k, num_items)), np.int64)
        for s in range(0, len(users), block_size):
            b = users[s : s + block_size]
            # self-similarity of a user's own items is excluded with them; no diagonal removal needed
            scores = np.asarray(((xn[b] @ xn.T) @ xn).todense(), dtype=np.float32)
            out[s : s + len(b)] = topk_from_scores(scores, k, exclude[s : s + len(b)])[0]
        return out

    return score


ALS_GRID = tuple((f, r) for f in (32, 64, 128) for r in (0.01, 0.1, 1.0))


def fit_als(
    train: pd.DataFrame,
    num_users: int,
    num_items: int,
    factors: int = 64,
    regularization: float = 0.05,
    seed: int = 42,
) -> Scorer:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit runs its own threads; nested BLAS threads only slow it
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=15, random_state=seed
        )
        model.fit(_user_item_matrix(train, num_users, num_items), show_progress=False)
    users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
        return topk_with_exclusions(users_f[users], items_f, k, exclude)[0]

    return score


def content_vectors(content: ItemContent) -> np.ndarray:
    """[n_items, d_visual + 2 d_text]: each present modality L2-normalised and centred on the
    catalogue's mean, absent ones zero (``recsys.model.data.prior_inputs``, the vectors the
    model's content prior reduces)."""
    from recsys.model.data import PRIOR_MODALITIES as modalities
    from recsys.model.data import prior_inputs, prior_means

    return prior_inputs(content, modalities, prior_means(content, modalities)).astype(np.float32)


def fit_content_only(train: pd.DataFrame, num_users: int, content: ItemContent) -> Scorer:
    vecs = content_vectors(content)
    x = _user_item_matrix(train, num_users, content.num_items)
    counts = np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)

    def score(users: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
        profiles = np.asarray(x[users] @ vecs) / counts[users][:, None]
        return topk_with_exclusions(profiles.astype(np.float32), vecs, k, exclude)[0]

    return score


def tune_als(
    fit: pd.DataFrame,
    held_out: pd.DataFrame,
    num_users: int,
    num_items: int,
    grid: tuple[tuple[int, float], ...] = ALS_GRID,
    seed: int = 42,
) -> dict[str, object]:
    """ALS (factors, regularization) with the best NDCG@10 on held-out training events.

    ``fit``/``held_out`` both come from the training side (``recsys.split.validation_split``),
    so the test events never choose a baseline's settings. Returns the best pair and every score.
    """
    from recsys.metrics import evaluate_rankings
    from recsys.split import evaluation_targets

    users, exclude, relevant = evaluation_targets(fit, held_out)
    if len(users) == 0:
        return {"factors": 64, "regularization": 0.05, "validation_users": 0, "grid": []}
    scores = []
    for factors, reg in grid:
        ranked = fit_als(fit, num_users, num_items, factors, reg, seed)(users, exclude, 10)
        scores.append({"factors": factors, "regularization": reg, **_ndcg(evaluate_rankings(ranked, relevant, 10))})
    best = max(scores, key=lambda s: s["ndcg@10"])
    return {
        "factors": best["factors"],
        "regularization": best["regularization"],
        "validation_users": len(users),
        "grid": scores,
    }


def _ndcg(metrics: dict[str, float]) -> dict[str, float]:
    return {"ndcg@10": round(metrics["ndcg@10"], 5)}


HistoryScorer = Callable[[list[list[int]], list[np.ndarray], int], np.ndarray]
"""(histories: per user, the item indices they watched; exclude lists; k) -> ranked [n, k]: for
users outside the training matrix (new users answered from the watches they just posted)."""


def history_popularity(train: pd.DataFrame, num_items: int) -> HistoryScorer:
    scorer = fit_popularity(train, num_items)
    return lambda histories, exclude, k: scorer(np.zeros(len(histories), np.int64), exclude, k)


def history_item_knn(train: pd.DataFrame, num_users: int, num_items: int) -> HistoryScorer:
    """Sum of item-item cosine similarities (as ``fit_item_knn``) to the given history items."""
    from scipy import sparse

    x = _user_item_matrix(train, num_users, num_items)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inv = sparse.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32))
    xn = (x @ inv).tocsc()

    def score(histories: list[list[int]], exclude: list[np.ndarray], k: int) -> np.ndarray:
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate([np.asarray(h, np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
        h = sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(histories), num_items))
        scores = np.asarray((h @ xn.T @ xn).todense(), np.float32)
        return topk_from_scores(scores, k, exclude)[0]

    return score


def history_content_only(content: ItemContent) -> HistoryScorer:
    """The mean content vector of the given history items (as ``fit_content_only``)."""
    vecs = content_vectors(content)

    def score(histories: list[list[int]], exclude: list[np.ndarray], k: int) -> np.ndarray:
        profiles = np.stack([vecs[np.asarray(h, np.int64)].mean(axis=0) for h in histories]).astype(np.float32)
        return topk_with_exclusions(profiles, vecs, k, exclude)[0]

    return score
