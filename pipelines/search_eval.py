"""How well text search finds videos, on a run's held-out-free catalogue: two tasks, three methods.

Tasks (queries built from the catalogue, seeded, the same for every method):

* **topic**: each category with >= 10 videos (the demo's topics, MovieLens/MovieTweetings genres).
  ``vocabulary`` queries (the demo: its topics are told only by their words): 5 queries per
  topic, each 2 words drawn from the topic's 10 most distinctive words (by share of the topic's
  texts over the share of all texts); ``name`` queries (a genre name, e.g. "comedy"). Relevant:
  the videos of that topic (``tags`` holding the genre for genres). Precision@10 and NDCG@10.
* **known_item**: up to 300 videos with titles of 2+ words; the query is the title with one word
  dropped (titles of 3+ words) and one word of 4+ letters misspelt (two inner letters swapped).
  Relevant: that video. MRR@10.

Methods, each a mode of ``recsys.search.SearchIndex`` as ``GET /v1/search?mode=`` serves it:
``semantic`` (the model version's item space and the captions' embeddings), ``bm25`` (mode
``lexical``: BM25 over title, description, tags) and ``hybrid`` (reciprocal-rank fusion of the
two top-100 lists).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter

import numpy as np
import pandas as pd

from pipelines import artifacts, ingest
from pipelines.config import PipelineConfig
from pipelines.storage import write_json
from pipelines.text_features import video_text
from recsys.metrics import mrr_at_k, ndcg_at_k

log = logging.getLogger(__name__)
WORD = re.compile(r"[a-z][a-z0-9']+")
STOP = frozenset("the a an of and or in on at to for with by from is are was be it its this that".split())
MODES = {"semantic": "semantic", "bm25": "lexical", "hybrid": "hybrid"}
"""The methods compared (by their names in the tables) and the ``recsys.search`` mode of each."""
METHODS = tuple(MODES)


def _tags(value: object) -> list[str]:
    return [t.strip().lower() for t in re.split(r"[|,;]", str(value or "")) if t.strip()]


def topic_queries(
    videos: pd.DataFrame, pos: dict[str, int], style: str, rng: np.random.Generator
) -> list[tuple[str, set[int]]]:
    """(query, relevant item indices) per topic; ``style`` vocabulary or name (module doc)."""
    rows = [r for r in videos.to_dict("records") if r["video_id"] in pos]
    out: list[tuple[str, set[int]]] = []
    if style == "name":
        genres = Counter(g for r in rows for g in set(_tags(r.get("tags"))))
        for genre, n in sorted(genres.items()):
            if n >= 10:
                out.append((genre, {pos[r["video_id"]] for r in rows if genre in _tags(r.get("tags"))}))
        return out
    words_of = {r["video_id"]: [w for w in WORD.findall(video_text(r).lower()) if w not in STOP] for r in rows}
    overall = Counter(w for ws in words_of.values() for w in set(ws))
    by_topic: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in rows:
        if r.get("category"):
            by_topic.setdefault(str(r["category"]), []).append(r)
    for _topic, members in sorted(by_topic.items()):
        if len(members) < 10:
            continue
        inside = Counter(w for r in members for w in set(words_of[r["video_id"]]))
        lift = {w: (c / len(members)) / (overall[w] / len(rows)) for w, c in inside.items() if c >= 3}
        vocab = sorted(lift, key=lambda w: (-lift[w], w))[:10]
        relevant = {pos[r["video_id"]] for r in members}
        for _ in range(5):
            if len(vocab) >= 2:
                out.append((" ".join(rng.choice(vocab, 2, replace=False)), relevant))
    return out


def _misspell(word: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(1, len(word) - 2))
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def known_item_queries(
    videos: pd.DataFrame, pos: dict[str, int], rng: np.random.Generator, n: int = 300
) -> list[tuple[str, set[int]]]:
    rows = [
        r for r in videos.to_dict("records") if r["video_id"] in pos and len(str(r.get("title") or "").split()) >= 2
    ]
    picks = rng.permutation(len(rows))[:n]
    out = []
    for j in picks:
        words = str(rows[j]["title"]).split()
        if len(words) >= 3:
            del words[int(rng.integers(len(words)))]
        long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if long:
            i = long[int(rng.integers(len(long)))]
            words[i] = _misspell(words[i], rng)
        out.append((" ".join(words), {pos[rows[j]["video_id"]]}))
    return out


def evaluate_search(cfg: PipelineConfig, run_date: str, topic_style: str, seed: int = 0) -> dict[str, object]:
    """Both tasks for every method on the run date's model; written to
    ``runs/<date>/evaluate/search.json`` and returned."""
    from recsys.search import DEFAULT_ALPHA, SearchIndex, top
    from recsys.text_onnx import OnnxTextEncoder, export_text_onnx

    t0 = time.perf_counter()
    model = artifacts.load_model(cfg, run_date)
    videos = ingest.load(cfg, run_date).videos
    pos = {v: i for i, v in enumerate(model.items)}
    index = SearchIndex(model.path, OnnxTextEncoder(export_text_onnx()), alpha=DEFAULT_ALPHA)
    rng = np.random.default_rng(seed)
    tasks = {
        "topic": topic_queries(videos, pos, topic_style, rng),
        "known_item": known_item_queries(videos, pos, rng),
    }
    out: dict[str, object] = {"model_version": model.version, "topic_style": topic_style, "videos": len(model.items)}
    for task, queries in tasks.items():
        per: dict[str, dict[str, list[float]]] = {m: {"p@10": [], "ndcg@10": [], "mrr@10": []} for m in METHODS}
        for query, relevant in queries:
            for m, mode in MODES.items():  # exactly what the API answers in that mode
                scores = index.mode_scores(query, mode)
                r = top(scores, min(10, int(np.isfinite(scores).sum())))
                per[m]["p@10"].append(len(set(r.tolist()) & relevant) / 10)
                per[m]["ndcg@10"].append(ndcg_at_k(r.tolist(), relevant, 10))
                per[m]["mrr@10"].append(mrr_at_k(r.tolist(), relevant, 10))
        out[task] = {
            "queries": len(queries),
            "examples": [q for q, _ in queries[:3]],
            **{
                m: {k: round(float(np.mean(v)), 4) if v else None for k, v in metrics.items()}
                | {
                    f"{k}_se": round(float(np.std(v) / np.sqrt(len(v))), 4) if len(v) > 1 else None
                    for k, v in metrics.items()
                }
                for m, metrics in per.items()
            },
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(cfg.partition(run_date, "evaluate") / "search.json", out)
    log.info("search evaluation %s: %s", run_date, out)
    return out
