"""Text-to-video search in the recommender's own item space, from a model version's folder.

A query is embedded by the caption encoder (``recsys.text_onnx.OnnxTextEncoder``: the same
vectors as the captions were given) and mapped through the version's item tower with only the
caption input present (``recsys.online.NumpyItemTower``: the path a new, caption-only video
takes), giving a row of the version's item matrix. A video's relevance to the query:

    score = (1 - alpha) * tower_cosine + alpha * caption_cosine

tower_cosine: the query row's and the video's item-tower embeddings (unit vectors: what the model
learned from watching, the space "similar videos" come from); caption_cosine: the query's text embedding and the video's caption embedding
(``CAPTIONS_FILE``; a version without that file: the rows' content-prior columns, reduced by
the prior's SVD). ``alpha`` = 0.8 by default (on the demo's user_time model of ``docs/results.md``,
measured 2026-12-07: topic precision@10 0.375 / 0.965 / 0.975 / 0.968 and known-item MRR@10
0.031 / 0.264 / 0.316 / 0.321 at alpha 0 / 0.5 / 0.8 / 1: the tower alone matches what people
co-watch more than what a text says). With a user (``personal``): each candidate among the
``rerank`` best by that score gets ``+ beta * z``, z its standardised score for the user (the
user's query vector from ``recsys.online.OnlineModel`` against the same candidates), so the
user's taste reorders what matches the query and never brings in what does not. numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.online import CAPTIONS_FILE, ITEM_TOWER_FILE, SEARCH_TEXTS_FILE, NumpyItemTower, _load
from recsys.scoring import ScoreLayout

DEFAULT_ALPHA = 0.8
DEFAULT_BETA = 0.3
DEFAULT_RERANK = 200
MODES = ("semantic", "lexical", "hybrid")
FUSE_DEPTH = 100


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 0, x / np.maximum(n, 1e-12), 0.0).astype(np.float32)


@dataclass
class SearchHit:
    video_id: str
    score: float


class SearchIndex:
    """One model version's videos, searchable by text."""

    def __init__(self, folder: Path | Any, encoder: Any, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.encoder, self.alpha = encoder, alpha
        self.items: list[str] = json.loads((folder / "items.json").read_text())
        scoring = json.loads((folder / "scoring.json").read_text())
        self.dim, content_dim = int(scoring["dim"]), int(scoring.get("content_dim", 0))
        rows = _load(folder / "item_embeddings.npy")
        self.tower = NumpyItemTower(folder / ITEM_TOWER_FILE)
        self.item_emb = ScoreLayout.from_json(scoring).similarity_vectors(rows)
        self.item_prior = _unit(rows[:, rows.shape[1] - content_dim :]) if content_dim else None
        self.content_dim = content_dim
        # the captions' own embeddings where the version has them (the query is embedded alike):
        # finer than the content prior's reduced columns (MovieLens known-item MRR@10 0.37 -> 0.55)
        self.captions = (
            _unit(_load(folder / CAPTIONS_FILE).astype(np.float32)) if (folder / CAPTIONS_FILE).exists() else None
        )
        texts = folder / SEARCH_TEXTS_FILE
        self._texts: list[str] | None = json.loads(texts.read_text()) if texts.exists() else None
        self._lexical: LexicalIndex | None = None

    @property
    def lexical(self) -> LexicalIndex:
        """BM25 over the version's video texts (``SEARCH_TEXTS_FILE``), built on first use."""
        if self._texts is None:
            raise ValueError("this model version has no video texts for lexical search (retrain once)")
        if self._lexical is None:
            self._lexical = LexicalIndex(self._texts)
        return self._lexical

    def query_rows(self, queries: list[str], text: np.ndarray | None = None) -> np.ndarray:
        """[n, layout.total] the queries as caption-only videos the model never saw (``text``: the
        queries' embeddings when the caller has them)."""
        from recsys.model.data import ItemContent

        text = self.encoder.encode(queries).astype(np.float32) if text is None else text
        n = len(queries)
        visual_dim = int(self.tower.w.get("visual_mean", np.zeros(1)).shape[0])
        comments_dim = int(self.tower.w.get("comments_mean", np.zeros(text.shape[1])).shape[0])
        content = ItemContent(
            visual=np.zeros((n, visual_dim), np.float32),
            visual_mask=np.zeros(n, np.float32),
            caption=text,
            caption_mask=np.ones(n, np.float32),
            comments=np.zeros((n, comments_dim), np.float32),
            comments_mask=np.zeros(n, np.float32),
        )
        return self.tower.rows(content)

    def scores(self, query: str) -> np.ndarray:
        """[n_items] every video's relevance to the query (the module's formula)."""
        text = self.encoder.encode([query]).astype(np.float32)
        row = self.query_rows([query], text)[0]
        tower = self.item_emb @ _unit(row[: self.dim])
        if self.alpha == 0.0:
            return tower
        if self.captions is not None:
            caption = self.captions @ _unit(text[0])
        elif self.item_prior is not None:
            caption = self.item_prior @ _unit(row[len(row) - self.content_dim :])
        else:
            return tower
        return (1.0 - self.alpha) * tower + self.alpha * caption

    def mode_scores(self, query: str, mode: str = "semantic") -> np.ndarray:
        """[n_items] relevance by ``mode``: semantic (``scores``); lexical (BM25, scaled to 0..1
        by the best match, -inf where no query word occurs); hybrid (reciprocal-rank fusion of the
        two top-``FUSE_DEPTH`` lists, scaled to 0..1 the same way, -inf outside both)."""
        if mode == "semantic":
            return self.scores(query)
        lex = self.lexical.scores(query).astype(np.float64)
        if mode == "lexical":
            out = np.full(len(lex), -np.inf)
            hit = lex > 0
            out[hit] = lex[hit] / lex.max() if hit.any() else 0.0
            return out
        lists = [top(self.scores(query), FUSE_DEPTH)]
        if (lex > 0).any():
            lists.append(top(np.where(lex > 0, lex, -np.inf), min(FUSE_DEPTH, int((lex > 0).sum()))))
        fused = rrf_scores(lists, len(lex))
        best = fused.max()
        return np.where(fused > 0, fused / best, -np.inf) if best > 0 else fused

    def search(
        self,
        query: str,
        k: int,
        user_scores: Any = None,
        beta: float = DEFAULT_BETA,
        rerank: int = DEFAULT_RERANK,
        skip: set[str] | None = None,
        mode: str = "semantic",
    ) -> list[SearchHit]:
        """The ``k`` best videos for ``query``; ``user_scores``: a callable giving the user's
        scores of item indices ([m] -> [m]), or None for the same answer to everyone; ``mode``:
        ``mode_scores``."""
        if not query.strip():
            raise ValueError("the query is empty")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        scores = self.mode_scores(query, mode)
        if skip:
            pos = {v: i for i, v in enumerate(self.items)}
            scores[[pos[v] for v in skip if v in pos]] = -np.inf
        m = min(max(k, rerank if user_scores is not None else k), len(scores))
        top = np.argpartition(-scores, m - 1)[:m]
        final = scores[top].astype(np.float64)
        if user_scores is not None and m > 1:
            u = np.asarray(user_scores(top), np.float64)
            ok = np.isfinite(u)
            if ok.sum() > 1:
                z = (u - u[ok].mean()) / max(float(u[ok].std()), 1e-9)
                final = final + beta * np.where(ok, z, 0.0)
        order = np.argsort(-final, kind="stable")[:k]
        return [SearchHit(self.items[top[i]], float(final[i])) for i in order if np.isfinite(final[i])]


class LexicalIndex:
    """BM25 (``bm25s``, English stop words) over each video's title, description and tags: the
    lexical baseline of search, and one half of the hybrid (``fuse``)."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.n = len(texts)
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """[n_items] BM25 score of every video (0 where no query word occurs)."""
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)[0]
        if not tokens:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.index.get_scores(tokens), np.float32)


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, best first (ties by index)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


def rrf_scores(rankings: list[np.ndarray], n: int, c: float = 60.0) -> np.ndarray:
    """Reciprocal-rank fusion (Cormack et al., 2009): [n] each video's sum of 1 / (c + rank) over
    the rankings (best first, item indices) it appears in; 0 where it is in none."""
    score = np.zeros(n, np.float64)
    for ranked in rankings:
        np.add.at(score, np.asarray(ranked, np.int64), 1.0 / (c + 1.0 + np.arange(len(ranked))))
    return score


def fuse(rankings: list[np.ndarray], k: int, c: float = 60.0) -> np.ndarray:
    """The ``k`` best videos by ``rrf_scores``, best first (ties by index)."""
    n = 1 + max((int(np.max(r)) for r in rankings if len(r)), default=-1)
    score = rrf_scores(rankings, n, c)
    return top(np.where(score > 0, score, -np.inf), min(k, int((score > 0).sum())))
