"""evaluate: offline Recall@K / NDCG@K of the model and a popularity baseline on held-out events.

Protocol (global time split): each evaluated user's history is their events before the cutoff
T; their relevant items are the videos they watched at or after T that they had not watched
before T. All videos are ranked except the user's pre-T history. Users with no pre-T event or
no new post-T video are not evaluated (counted in the output). The popularity baseline ranks
by pre-T watch count, through the same ranking and metric code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines import dataset, train
from pipelines.config import PipelineConfig, write_json
from recsys.metrics import evaluate_rankings, topk_with_exclusions
from recsys.model import last_history

log = logging.getLogger(__name__)

K_VALUES = (10,)


def evaluation_targets(
    train_events: pd.DataFrame, test_events: pd.DataFrame
) -> tuple[np.ndarray, list[np.ndarray], list[set[int]]]:
    """(user indices, per-user train items to exclude, per-user relevant test items) for evaluable users."""
    seen = train_events.groupby("user_idx")["item_idx"].agg(lambda s: np.unique(s.to_numpy()))
    later = test_events.groupby("user_idx")["item_idx"].agg(set)
    users, exclude, relevant = [], [], []
    for u, items in later.items():
        if u not in seen.index:
            continue
        rel = items - set(seen[u].tolist())
        if rel:
            users.append(int(u))
            exclude.append(seen[u])
            relevant.append(rel)
    return np.asarray(users, np.int64), exclude, relevant


def evaluate_scorers(
    scorers: dict[str, Callable[[np.ndarray, list[np.ndarray], int], np.ndarray]],
    users: np.ndarray,
    exclude: list[np.ndarray],
    relevant: list[set[int]],
    k_values: tuple[int, ...] = K_VALUES,
) -> dict[str, dict[str, float]]:
    """Each scorer returns [n_users, max(k)] ranked item indices; all share the metric code."""
    k_max = max(k_values)
    out = {}
    for name, scorer in scorers.items():
        ranked = scorer(users, exclude, k_max)
        metrics: dict[str, float] = {}
        for k in k_values:
            metrics.update(evaluate_rankings(ranked, relevant, k))
        out[name] = metrics
    return out


def popularity_scorer(
    train_events: pd.DataFrame, num_items: int
) -> Callable[[np.ndarray, list[np.ndarray], int], np.ndarray]:
    counts = np.bincount(train_events["item_idx"].to_numpy(), minlength=num_items).astype(np.float32)
    # Tiny index-based tie-break so equal counts rank the same way every run.
    counts -= np.arange(num_items, dtype=np.float32) * 1e-6

    def score(users: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
        vecs = np.ones((len(users), 1), np.float32)
        return topk_with_exclusions(vecs, counts[:, None], k, exclude)[0]

    return score


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    ds = dataset.load(cfg, run_date)
    model = train.load_model(cfg, run_date)
    split = ds.split
    users, exclude, relevant = evaluation_targets(split.train, split.test)
    if len(users) == 0:
        raise ValueError("no user has events on both sides of the time split: lower test_fraction or add events")
    pad = len(ds.items)
    hist = last_history(
        split.train["user_idx"].to_numpy(),
        split.train["item_idx"].to_numpy(),
        split.train["ts"].to_numpy(),
        len(ds.users),
        model.config.max_history,
        pad,
    )

    def model_scorer(u: np.ndarray, excl: list[np.ndarray], k: int) -> np.ndarray:
        vecs = model.user_tower(hist[u], u.astype(np.int32))
        return topk_with_exclusions(vecs, model.item_vectors, k, excl)[0]

    results = evaluate_scorers(
        {"two_tower": model_scorer, "popularity": popularity_scorer(split.train, len(ds.items))},
        users,
        exclude,
        relevant,
    )
    report = {
        "run_date": run_date,
        "model_version": model.version,
        "data_source": str(cfg.source),
        "protocol": split.protocol,
        "protocol_detail": "train before cutoff T, test at/after T; rank all videos except the user's pre-T history",
        **split.describe(),
        "users_evaluated": int(len(users)),
        "users_total": len(ds.users),
        "metrics": results,
    }
    write_json(cfg.partition(run_date, "evaluate") / "report.json", report)
    write_json(model.path / "metrics.json", report)
    for name, m in results.items():
        log.info(
            "evaluate %s [%s, %d users]: recall@10=%.4f±%.4f ndcg@10=%.4f±%.4f",
            name,
            split.protocol,
            len(users),
            m["recall@10"],
            m["recall@10_se"],
            m["ndcg@10"],
            m["ndcg@10_se"],
        )
    return report
