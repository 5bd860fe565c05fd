"""evaluate: offline metrics of the model and the baselines on held-out events.

Protocols (``cfg.protocol``; see ``recsys.split``): global_time (default for the nightly job),
user_time (each user's last 20% by time), leave_last_out, and random (the TFRS basic-retrieval
tutorial's 80/20; nothing excluded from the ranking). For the first three, each evaluated user's
history is their training events, their relevant items are test videos they had not watched in
training, and every video is ranked except their training videos. Under every protocol, videos
whose media file was quarantined as unplayable are neither ranked nor relevant (publish never
serves them). Users with no training event or nothing relevant are not evaluated (counted). Popularity ranks by training watch count
and the other baselines (item-kNN, ALS, content-only; ``recsys.baselines``) go through the same
ranking and metric code. Metrics: Recall, NDCG, HitRate, MRR at K in
{10, 20, 50} with standard errors over users; coverage, novelty and popularity of the lists.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from pipelines import artifacts, dataset, fitting, storage
from pipelines.config import PipelineConfig
from pipelines.report import write_html
from pipelines.storage import write_json
from recsys import baselines
from recsys.baselines import Scorer
from recsys.metrics import beyond_accuracy, evaluate_rankings, paired_bootstrap, per_user_ndcg
from recsys.model import last_history
from recsys.retrieval import rank
from recsys.split import evaluation_targets, validation_split

log = logging.getLogger(__name__)

K_VALUES = (10, 20, 50)


def rank_all(scorers: dict[str, Scorer], users: np.ndarray, exclude: list[np.ndarray], k: int) -> dict[str, np.ndarray]:
    return {name: scorer(users, exclude, k) for name, scorer in scorers.items()}


def summarise(
    ranked: np.ndarray, relevant: list[set[int]], train_counts: np.ndarray, k_values: tuple[int, ...] = K_VALUES
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for k in k_values:
        metrics.update(evaluate_rankings(ranked, relevant, k))
        metrics.update(beyond_accuracy(ranked, train_counts, k))
    return metrics


def cohort_metrics(
    rankings: dict[str, np.ndarray],
    users: np.ndarray,
    relevant: list[set[int]],
    train: pd.DataFrame,
    train_counts: np.ndarray,
    k: int = 10,
) -> dict[str, dict[str, dict[str, float]]]:
    """Recall@k and NDCG@k per cohort, for every scorer, over the same ranked lists.

    * cold_videos: only test videos with no training event count as relevant (users with one).
    * light_users / heavy_users: the bottom / top third of evaluated users by training events.
    """
    per_user = train.groupby("user_idx").size().reindex(users).fillna(0).to_numpy()
    lo, hi = np.quantile(per_user, [1 / 3, 2 / 3])
    cold = set(np.flatnonzero(train_counts == 0).tolist())
    cohorts: dict[str, tuple[np.ndarray, list[set[int]]]] = {
        "light_users": (np.flatnonzero(per_user <= lo), relevant),
        "heavy_users": (np.flatnonzero(per_user >= hi), relevant),
    }
    cold_rel = [r & cold for r in relevant]
    cohorts["cold_videos"] = (np.flatnonzero([bool(r) for r in cold_rel]), cold_rel)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cohort, (rows, rel) in cohorts.items():
        if len(rows) == 0:
            continue
        out[cohort] = {
            name: evaluate_rankings(ranked[rows], [rel[r] for r in rows], k) for name, ranked in rankings.items()
        }
    return out


AGE_BANDS = (("age<1d", 0.0, 86400.0), ("age1-7d", 86400.0, 7 * 86400.0), ("age>7d", 7 * 86400.0, np.inf))


def video_age_cohorts(
    rankings: dict[str, np.ndarray], users: np.ndarray, ds: dataset.Dataset, split: object, k: int = 10
) -> dict[str, dict[str, dict[str, float]]]:
    """NDCG@k per band of video age at the time of the held-out watch (< 1 day, 1-7 days, older):
    only held-out videos whose watch fell in the band count as relevant (users with one). A video's
    age runs from its publication time, else from its first event anywhere in the data (a label of
    the test event, never a model input). Empty when no video has a time to count from."""
    events = pd.concat([split.train, split.test])  # type: ignore[attr-defined]
    birth, _ = fitting.item_birth(events, ds.published_at, len(ds.items))
    if np.isnan(birth).all():
        return {}
    test = split.test  # type: ignore[attr-defined]
    age = test["ts"].to_numpy(np.float64) - birth[test["item_idx"].to_numpy()]
    row_of = {int(u): r for r, u in enumerate(users)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, lo, hi in AGE_BANDS:
        band = test[(age >= lo) & (age < hi)]
        per_user: dict[int, set[int]] = {}
        for u, i in zip(band["user_idx"].to_numpy(), band["item_idx"].to_numpy(), strict=True):
            if int(u) in row_of:
                per_user.setdefault(row_of[int(u)], set()).add(int(i))
        rows = sorted(per_user)
        if not rows:
            continue
        # only videos the user had not watched in training can be relevant (they are excluded from ranking)
        rel = [per_user[r] for r in rows]
        out[f"video_{name}"] = {m: evaluate_rankings(ranked[rows], rel, k) for m, ranked in rankings.items()}
    return out


SENTIMENT_BANDS = (("negative", -1.01, -0.05), ("neutral", -0.05, 0.05), ("positive", 0.05, 1.01))


def sentiment_cohorts(
    rankings: dict[str, np.ndarray], users: np.ndarray, relevant: list[set[int]], sentiment: np.ndarray, k: int = 10
) -> dict[str, dict[str, dict[str, float]]]:
    """NDCG@k per band of the held-out videos' comment sentiment (``text_features``: VADER compound,
    < -0.05 negative, > 0.05 positive): only held-out videos in the band count as relevant (users
    with one). Videos without comments are in no band. Empty when no video has comments."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, lo, hi in SENTIMENT_BANDS:
        band = set(np.flatnonzero((sentiment >= lo) & (sentiment < hi)).tolist())
        rows = [r for r, rel in enumerate(relevant) if rel & band]
        if rows:
            rel = [relevant[r] & band for r in rows]
            out[f"sentiment_{name}"] = {m: evaluate_rankings(ranked[rows], rel, k) for m, ranked in rankings.items()}
    return out


def item_sentiment(cfg: PipelineConfig, run_date: str, items: list[str]) -> np.ndarray:
    """[n_items] each video's comment sentiment (NaN: no comments, or no text features)."""
    from pipelines import text_features

    try:
        features = text_features.load(cfg, run_date)
    except FileNotFoundError:
        return np.full(len(items), np.nan)
    if "sentiment" not in features:
        return np.full(len(items), np.nan)
    by_id = dict(zip(features["video_id"], features["sentiment"], strict=True))
    return np.array([by_id.get(v, np.nan) for v in items], np.float64)


def paired_comparisons(
    rankings: dict[str, np.ndarray], users: np.ndarray, relevant: list[set[int]], train_counts: np.ndarray, k: int = 10
) -> dict[str, dict[str, object]]:
    """The model against the best baseline of the same run (by mean NDCG@k), user by user: the mean
    per-user NDCG@k difference and its bootstrap 95% interval, over all evaluated users and over the
    cold-video cohort (there, against the best baseline of that cohort)."""
    out: dict[str, dict[str, object]] = {}
    cold = set(np.flatnonzero(train_counts == 0).tolist())
    cold_rel = [r & cold for r in relevant]
    cold_rows = np.flatnonzero([bool(r) for r in cold_rel])
    for label, rows, rel in (
        ("all", np.arange(len(relevant)), relevant),
        ("cold_videos", cold_rows, [cold_rel[r] for r in cold_rows]),
    ):
        if len(rows) == 0 or "two_tower" not in rankings:
            continue
        per = {m: per_user_ndcg(ranked[rows], rel, k) for m, ranked in rankings.items()}
        others = [m for m in per if m != "two_tower"]
        if not others:
            continue
        best = max(others, key=lambda m: per[m].mean())
        out[label] = {"baseline": best, **paired_bootstrap(per["two_tower"], per[best])}
    return out


def scorers_for_new_users(train_events: pd.DataFrame, ds: dataset.Dataset, with_baselines: bool) -> dict[str, object]:
    """History scorers for users the model never saw: (histories [n][items], exclude, k) -> ranked."""
    n_items = len(ds.items)
    out: dict[str, object] = {}
    if with_baselines:
        out["popularity"] = baselines.history_popularity(train_events, n_items)
        out["item_knn"] = baselines.history_item_knn(train_events, len(ds.users), n_items)
        out["content_only"] = baselines.history_content_only(ds.content)
    return out


def new_user_cohort(
    model: artifacts.ExportedModel,
    ds: dataset.Dataset,
    split: object,
    history_scorers: dict[str, object],
    now: np.ndarray,
    k: int = 10,
) -> dict[str, dict[str, float]]:
    """Users with no training events and at least two held-out ones, answered as the API answers a
    user it never saw once their first watch is posted: the model from that watch alone (the mean
    of its item embeddings, as ``serving.online`` does), the baselines from the same watch (ALS
    has no vector for them: it serves popularity). Relevant: their later held-out videos."""
    train_ev, test = split.train, split.test  # type: ignore[attr-defined]
    seen = set(train_ev["user_idx"].unique().tolist())
    fresh = test[~test["user_idx"].isin(seen)].sort_values(["user_idx", "ts"], kind="stable")
    if fresh.empty:
        return {}
    histories, relevant, times = [], [], []
    for _, g in fresh.groupby("user_idx"):
        first = int(g["item_idx"].iloc[0])
        later = set(g["item_idx"].iloc[1:].tolist()) - {first}
        if later:
            histories.append([first])
            relevant.append(later)
            times.append(float(g["ts"].iloc[0]))
    if not histories:
        return {}
    exclude = [np.asarray(h, np.int64) for h in histories]
    from recsys.online import NUMPY_TOWER_FILE, NumpyUserTower

    tower = NumpyUserTower(model.path / NUMPY_TOWER_FILE, model.item_vectors)
    hist = np.full((len(histories), model.config.max_history), len(ds.items), np.int64)
    hist[:, -1] = [h[0] for h in histories]
    vecs = tower.item_to_item(hist)
    ranked = rank(vecs, model.catalogue(), k, exclude, now=np.asarray(times))[0]
    out = {"two_tower": evaluate_rankings(ranked, relevant, k)}
    for name, scorer in history_scorers.items():
        out[name] = evaluate_rankings(scorer(histories, exclude, k), relevant, k)  # type: ignore[operator]
    if "popularity" in out:
        out["als"] = out["popularity"]
    return out


def protocol_detail(protocol: str, test_fraction: float) -> str:
    """How a protocol split the events, in words, with the configured held-out share."""
    test, train = round(100 * test_fraction), round(100 * (1 - test_fraction))
    return {
        "global_time": f"train before time T ({train}th percentile of timestamps), test at/after T; "
        "rank all videos except the user's training videos",
        "user_time": f"each user's last {test}% of events by time are test; "
        "rank all videos except the user's training videos",
        "leave_last_out": "each user's last event is test; rank all videos except the user's training videos",
        "random": f"random {train}/{test} split of events (TFRS basic-retrieval tutorial); nothing excluded from ranking",
    }[protocol]


def format_table(report: dict) -> str:  # type: ignore[type-arg]
    """The report's metrics as a plain-text table (mean ± standard error over users)."""
    lines = [
        f"data: {report['data_source']}  protocol: {report['protocol']}  users evaluated: "
        f"{report['users_evaluated']} of {report['users_total']}  model: {report['model_version']}",
        f"{'model':<12}"
        + "".join(f"{m + '@' + str(k):>17}" for k in K_VALUES for m in ("recall", "ndcg"))
        + "".join(f"{m + '@10':>14}" for m in ("hitrate", "mrr", "coverage")),
    ]
    for name, m in report["metrics"].items():
        cells = "".join(f"{m[f'{x}@{k}']:>10.4f}±{m[f'{x}@{k}_se']:.4f}" for k in K_VALUES for x in ("recall", "ndcg"))
        cells += "".join(f"{m[f'{x}@10']:>14.4f}" for x in ("hitrate", "mrr", "coverage"))
        lines.append(f"{name:<12}{cells}")
    training = report.get("training") or {}
    if training.get("val_ndcg@10"):
        lines.append(
            f"two_tower: {training['epochs_run']} epochs run, best epoch {training['best_epoch']} "
            f"(validation NDCG@10 {max(training['val_ndcg@10']):.4f} over {training['validation_users']} users, "
            "held out from training)"
            + (
                f"; refit on all training events for {training['refit_epochs']} epochs"
                if training.get("refit_epochs")
                else ""
            )
        )
    als = (report.get("baseline_tuning") or {}).get("als")
    if als and als.get("grid"):
        lines.append(
            f"als: factors {als['factors']}, regularization {als['regularization']} "
            f"(best validation NDCG@10 of {len(als['grid'])} settings, {als['validation_users']} users)"
        )
    for cohort, by_model in report.get("cohorts", {}).items():
        n = next(iter(by_model.values()))["users"]
        cells = "  ".join(f"{name} {m['ndcg@10']:.4f}±{m['ndcg@10_se']:.4f}" for name, m in by_model.items())
        lines.append(f"cohort {cohort} ({n} users) ndcg@10: {cells}")
    for label, p in (report.get("paired") or {}).items():
        lines.append(
            f"paired ({label}, {p['users']} users): two_tower - {p['baseline']} NDCG@10 "
            f"{p['mean_diff']:+.4f}, 95% bootstrap interval [{p['lo']:+.4f}, {p['hi']:+.4f}]"
        )
    tuning = report.get("tuning") or {}
    if tuning.get("trials"):
        lines.append(
            f"tuning: chose {tuning['chosen'] or 'the defaults'} of {len(tuning['trials'])} settings tried in "
            f"{tuning['seconds']:.0f} s (budget {tuning['budget_seconds']:.0f} s) by validation NDCG@10"
        )
    return "\n".join(lines)


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    ds = dataset.load(cfg, run_date)
    try:
        model = artifacts.load_model(cfg, run_date)
    except artifacts.NoModel as exc:
        return unevaluated_report(cfg, run_date, None, str(exc))
    try:
        report = evaluate_model(cfg, run_date, ds, model, with_baselines=True)
    except NothingToEvaluate as exc:  # no metrics.json in the model folder: the publish gate lets it out
        return unevaluated_report(cfg, run_date, model.version, str(exc))
    write_json(cfg.partition(run_date, "evaluate") / "report.json", report)
    write_json(model.path / "metrics.json", report)
    html_path = write_html(cfg, run_date, report)
    print(format_table(report), flush=True)
    print(f"report: {html_path}", flush=True)
    return report


class NothingToEvaluate(ValueError):
    """No user has a relevant held-out video: the split leaves nothing to measure."""


def unevaluated_report(cfg: PipelineConfig, run_date: str, version: str | None, reason: str) -> dict[str, object]:
    """The report of a night that trained no model (``version`` None) or one with nothing held out
    to measure it on: why, and what the dataset held."""
    split = json.loads((cfg.partition(run_date, "dataset") / "split.json").read_text())
    report: dict[str, object] = {
        "run_date": run_date,
        "model_version": version,
        ("no_evaluation" if version else "no_model"): reason,
        "protocol": cfg.protocol,
        "dataset": split,
        "users_evaluated": 0,
        "metrics": {},
    }
    write_json(cfg.partition(run_date, "evaluate") / "report.json", report)
    html_path = write_html(cfg, run_date, report)
    print(f"{'no evaluation of ' + version if version else 'no model'} for {run_date}: {reason}", flush=True)
    print(f"report: {html_path}", flush=True)
    return report


def evaluate_model(
    cfg: PipelineConfig, run_date: str, ds: dataset.Dataset, model: artifacts.ExportedModel, with_baselines: bool
) -> dict[str, object]:
    """The report for one exported model (and, optionally, the baselines) on the dataset's split."""
    split = ds.split
    users, exclude, relevant = evaluation_targets(split.train, split.test, split.excludes_train_items)
    users, exclude, relevant = drop_unservable(users, exclude, relevant, unservable_items(cfg, run_date, ds))
    if len(users) == 0:
        raise NothingToEvaluate(
            "no user has a held-out video they had not watched in training (too few events on both sides "
            "of the split): lower test_fraction or add events"
        )
    hist, weight = last_history(
        split.train["user_idx"].to_numpy(),
        split.train["item_idx"].to_numpy(),
        split.train["ts"].to_numpy(),
        len(ds.users),
        model.config.max_history,
        len(ds.items),
        fitting.completion(split.train),
    )

    # Freshness is judged at each user's reference time (``fitting.reference_times``).
    now = fitting.reference_times(split.train, split.test, split.protocol, len(ds.users))

    def model_scorer(u: np.ndarray, excl: list[np.ndarray], k: int) -> np.ndarray:
        vecs = model.user_tower(hist[u], u.astype(np.int32), weight[u])
        return rank(vecs, model.catalogue(), k, excl, now=now[u])[0]

    train_counts = np.bincount(split.train["item_idx"].to_numpy(), minlength=len(ds.items)).astype(np.float64)
    fit_on, n_users, n_items = split.train, len(ds.users), len(ds.items)
    scorers: dict[str, Scorer] = {"two_tower": model_scorer}
    tuning: dict[str, object] = {}
    if with_baselines:
        # ALS settings are chosen on a validation split of the training events, never on test.
        fit, held_out = validation_split(fit_on, cfg.model.validation_fraction or 0.1, split.protocol)
        tuning["als"] = als = baselines.tune_als(fit, held_out, n_users, n_items, seed=cfg.model.seed)
        scorers.update(
            {
                "popularity": baselines.fit_popularity(fit_on, n_items),
                "item_knn": baselines.fit_item_knn(fit_on, n_users, n_items),
                "als": baselines.fit_als(
                    fit_on, n_users, n_items, als["factors"], als["regularization"], seed=cfg.model.seed
                ),
                "content_only": baselines.fit_content_only(fit_on, n_users, ds.content),
            }
        )
    rankings = rank_all(scorers, users, exclude, max(K_VALUES))
    cohorts = cohort_metrics(rankings, users, relevant, split.train, train_counts)
    cohorts.update(video_age_cohorts(rankings, users, ds, split))
    sentiment = item_sentiment(cfg, run_date, ds.items)
    cohorts.update(sentiment_cohorts(rankings, users, relevant, sentiment))
    new_users = new_user_cohort(model, ds, split, scorers_for_new_users(fit_on, ds, with_baselines), now)
    if new_users:
        cohorts["new_users"] = new_users
    return {
        "run_date": run_date,
        "model_version": model.version,
        "data_source": str(cfg.source),
        "protocol": split.protocol,
        "protocol_detail": protocol_detail(split.protocol, cfg.test_fraction),
        **split.describe(),
        "users_evaluated": int(len(users)),
        "users_total": len(ds.users),
        "sentiment_videos": {
            name: int(((sentiment >= lo) & (sentiment < hi)).sum()) for name, lo, hi in SENTIMENT_BANDS
        }
        | {"no_comments": int(np.isnan(sentiment).sum())},
        "metrics": {name: summarise(ranked, relevant, train_counts) for name, ranked in rankings.items()},
        "cohorts": cohorts,
        "paired": paired_comparisons(rankings, users, relevant, train_counts) if with_baselines else {},
        "baseline_tuning": tuning,
        "examples": example_users(ds, users, relevant, rankings["two_tower"], hist),
        "model_config": asdict(model.config),
        "training": _training_summary(model),
        "tuning": _json_file(model.path / "tuning.json"),
    }


def unservable_items(cfg: PipelineConfig, run_date: str, ds: dataset.Dataset) -> np.ndarray:
    """Indices of videos publish never serves (media quarantined as unplayable)."""
    from pipelines import frame_features

    try:
        bad = set(frame_features.load_quarantine(cfg, run_date)["video_id"])
    except FileNotFoundError:
        return np.zeros(0, np.int64)
    return np.array(sorted(i for i, v in enumerate(ds.items) if v in bad), np.int64)


def drop_unservable(
    users: np.ndarray, exclude: list[np.ndarray], relevant: list[set[int]], blocked: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], list[set[int]]]:
    """Rank as publish does: unservable videos are never ranked and never count as relevant
    (users left with nothing relevant are not evaluated)."""
    if len(blocked) == 0:
        return users, exclude, relevant
    gone = set(blocked.tolist())
    keep = [r for r, rel in enumerate(relevant) if rel - gone]
    return (
        users[keep],
        [np.union1d(exclude[r], blocked) for r in keep],
        [relevant[r] - gone for r in keep],
    )


def example_users(
    ds: dataset.Dataset,
    users: np.ndarray,
    relevant: list[set[int]],
    ranked: np.ndarray,
    hist: np.ndarray,
    n: int = 3,
) -> list[dict[str, object]]:
    """A few evaluated users (those with the most held-out videos), with their last watched videos,
    the model's top 10 and their held-out videos, as ids."""
    pad = len(ds.items)
    rows = sorted(range(len(users)), key=lambda r: (-len(relevant[r]), int(users[r])))[:n]
    return [
        {
            "user_id": ds.users[int(users[r])],
            "history": [ds.items[i] for i in hist[int(users[r])][::-1] if i != pad][:10],
            "recommended": [ds.items[i] for i in ranked[r][:10] if i >= 0],
            "held_out": sorted(ds.items[i] for i in relevant[r]),
        }
        for r in rows
    ]


def _json_file(path: object) -> dict[str, object]:
    p = storage.location(path)
    return json.loads(p.read_text()) if p.exists() else {}


def _training_summary(model: artifacts.ExportedModel) -> dict[str, object]:
    """Epochs run, best epoch and validation NDCG@10 per epoch, from the exported model folder."""
    path = model.path / "train_history.json"
    hist = json.loads(path.read_text()) if path.exists() else {}
    return {
        "epochs_run": len(hist.get("fit_loss") or hist.get("loss", [])),
        "refit_epochs": len(hist["loss"]) if hist.get("refit") else None,
        "best_epoch": (hist.get("best_epoch") or [None])[0],
        "validation_users": (hist.get("validation_users") or [0])[0],
        "loss": hist.get("loss", []),
        "val_ndcg@10": hist.get("val_ndcg@10", []),
    }
