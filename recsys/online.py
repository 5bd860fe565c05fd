"""The exported user tower in plain numpy, for online scoring in the API without TensorFlow.

The user tower reads only item-tower outputs of the history (the exported item matrix's
embedding columns) plus a few small layers; ``export_numpy_user_tower`` saves those layers'
weights and ``NumpyUserTower`` repeats the tower's arithmetic (pooling, count feature, optional
user-id embedding, two dense layers, L2 normalisation, temperature, then the bias column's 1 and
the weighted content profile of the history; see ``recsys.scoring.ScoreLayout``). A test checks it
against the TensorFlow tower.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from recsys.scoring import combine_members

NUMPY_TOWER_FILE = "user_tower_numpy.npz"
ITEM_TOWER_FILE = "item_tower_numpy.npz"
SUMMARIES_FILE = "summaries.json"  # each video's summary frame times and strip file (pipelines.train)
CAPTIONS_FILE = "caption_embeddings.npy"  # each video's caption embedding, float16 (pipelines.train; search)
SEARCH_TEXTS_FILE = "search_texts.json"  # each video's title, description and tag words (lexical search)
EXCLUDED_FILE = "published_excluded.npz"
"""Per published user, the videos their list left out (written by publish beside the model)."""
_SETTINGS = (
    "user_pooling",
    "completion_weighting",
    "use_user_id",
    "max_history",
    "embedding_dim",
    "temperature",
    "item_bias",
    "freshness",
    "content_prior",
    "content_prior_dim",
)
_DEFAULTS = {
    "temperature": 1.0,
    "item_bias": False,
    "freshness": False,
    "content_prior": False,
    "content_prior_dim": 0,
}


def export_numpy_user_tower(user_tower: Any, config: dict[str, Any], path: Path) -> None:
    """Save the user tower's own weights (not the item tower's) and the settings the math needs;
    of an ensemble (``recsys.model.ensemble.EnsembleUserTower``) every member's, prefixed ``m<j>_``."""
    members = list(getattr(user_tower, "members", [user_tower]))
    arrays: dict[str, np.ndarray] = {}
    for j, tower in enumerate(members):
        prefix = f"m{j}_" if len(members) > 1 else ""
        own = asdict(tower.cfg) if len(members) > 1 else config  # members differ in settings (temperature)
        arrays |= {prefix + k: v for k, v in _user_tower_arrays(tower, own).items()}
        arrays[prefix + "config"] = _json_bytes({k: own.get(k) for k in _SETTINGS} | {"members": len(members)})
    with path.open("wb") as f:
        np.savez(f, **arrays)


def _json_bytes(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), np.uint8)


def _user_tower_arrays(user_tower: Any, config: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {
        "hidden_kernel": user_tower.hidden.kernel.numpy(),
        "hidden_bias": user_tower.hidden.bias.numpy(),
        "out_kernel": user_tower.out.kernel.numpy(),
        "out_bias": user_tower.out.bias.numpy(),
        "user_known": user_tower.user_known.numpy(),
    }
    emb = user_tower.user_embedding
    # Never built when the tower does not use user ids; the rows are then unused.
    built = getattr(emb, "embeddings", None)
    arrays["user_embedding"] = built.numpy() if built is not None else np.zeros((emb.input_dim, 1), np.float32)
    if config["user_pooling"] == "attention":
        arrays["position"] = user_tower.position.numpy()
        arrays["query"] = user_tower.pool_query.numpy()
    if config.get("content_prior"):
        arrays["content_weight"] = np.asarray(user_tower.content_weight().numpy(), np.float32)
        # the history's content profile comes from this table, as in the TF tower: the item rows'
        # prior columns of videos without training events are weighted for scoring (``new_video_prior``)
        arrays["prior"] = user_tower.item_tower.prior.numpy()[:, : int(config["content_prior_dim"])]
    return arrays


def _member(w: dict[str, np.ndarray], members: int, j: int) -> dict[str, np.ndarray]:
    """Member ``j``'s arrays of an exported ensemble (``m<j>_`` prefixed), or all of a single model."""
    if members == 1:
        return w
    prefix = f"m{j}_"
    return {k[len(prefix) :]: v for k, v in w.items() if k.startswith(prefix)}


def _settings(raw: np.ndarray) -> dict[str, Any]:
    """An exported tower's settings (JSON bytes), with the defaults of versions exported before a setting."""
    config = json.loads(raw.tobytes().decode())
    return {k: _DEFAULTS.get(k) if config.get(k) is None else config[k] for k in _SETTINGS} | {
        "members": int(config.get("members") or 1)
    }


class NumpyUserTower:
    """The exported user tower in numpy (``__call__``; ``item_to_item`` for a user the model never
    saw); an ensemble's members each from their own embedding columns, combined as
    ``recsys.scoring.combine_members`` combines query vectors."""

    def __init__(self, path: Path, item_vectors: np.ndarray) -> None:
        with _load(path) as z:
            w = {k: z[k] for k in z.files}
        first = _settings(w.get("config", w.get("m0_config")))
        self.config = first
        k, d = int(first.get("members") or 1), int(first["embedding_dim"])
        rest = np.asarray(item_vectors[:, k * d :], np.float32)
        self.members = []
        for j in range(k):
            own = _member(w, k, j)
            rows = np.concatenate([item_vectors[:, j * d : (j + 1) * d], rest], axis=1)
            self.members.append(_MemberTower(own, _settings(own.pop("config")), rows))
        self.dim = d
        self.pad = len(item_vectors)

    def item_to_item(self, history: np.ndarray) -> np.ndarray:
        """[b, D] query vectors from the mean of the history's item embeddings (no user tower):
        videos like the ones watched, for users the model never saw."""
        return combine_members([m.item_to_item(history) for m in self.members], self.dim, query=True)

    def __call__(
        self, history: np.ndarray, weight: np.ndarray | None = None, user: np.ndarray | None = None
    ) -> np.ndarray:
        """history [b, max_history] item indices (``pad`` = none, left-padded); weight [b, max_history]
        completion; user [b] user indices (None: the unknown user) -> [b, D] float32."""
        return combine_members([m(history, weight, user) for m in self.members], self.dim, query=True)


class _MemberTower:
    """One model's user tower (an ensemble member's, on its own embedding columns)."""

    def __init__(self, w: dict[str, np.ndarray], config: dict[str, Any], item_vectors: np.ndarray) -> None:
        self.w, self.config = w, config
        d = int(self.config["embedding_dim"])
        self.bias = bool(self.config["item_bias"] or self.config["freshness"])
        self.content_dim = int(self.config["content_prior_dim"]) if self.config["content_prior"] else 0
        pad = np.zeros((1, item_vectors.shape[1]), np.float32)
        # unit length again: a new video's row is scaled for scoring (``ScoreLayout.new_video_rows``),
        # as a watched video in a history it is the tower's embedding
        emb = np.asarray(item_vectors[:, :d], np.float32)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 1e-12)
        self.items = np.concatenate([emb, pad[:, :d]])
        self.prior = None
        if self.content_dim:
            table = self.w.get("prior")
            if table is not None and table.shape == (len(item_vectors) + 1, self.content_dim):
                self.prior = np.asarray(table, np.float32)  # the last row: the padding, zeros
            else:  # a version from before the table was exported: the rows' own prior columns
                cols = item_vectors[:, item_vectors.shape[1] - self.content_dim :]
                self.prior = np.concatenate([cols, pad[:, : self.content_dim]])
        self.pad = len(item_vectors)
        self.unknown_user = len(self.w["user_embedding"]) - 1

    def _tail(self, q: np.ndarray, h: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The query vector: ``q`` (already divided by the temperature), then 1 for the bias column
        and the weighted content profile of the history, as the layout has them."""
        cols = [q]
        if self.bias:
            cols.append(np.ones((len(h), 1), np.float32))
        if self.prior is not None:
            count = mask.sum(axis=1, keepdims=True)
            profile = (self.prior[h] * mask[:, :, None]).sum(axis=1) / np.maximum(count, 1.0)
            cols.append(float(self.w["content_weight"]) * profile)
        return np.concatenate(cols, axis=1).astype(np.float32)

    def item_to_item(self, history: np.ndarray) -> np.ndarray:
        h = np.where((history >= 0) & (history < self.pad), history, self.pad)
        mask = (h != self.pad).astype(np.float32)
        mean = (self.items[h] * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        q = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12) / float(self.config["temperature"])
        return self._tail(q, h, mask)

    def __call__(self, history: np.ndarray, weight: np.ndarray | None, user: np.ndarray | None) -> np.ndarray:
        h = np.where((history >= 0) & (history < self.pad), history, self.pad)
        items = self.items[h]  # [b, n, d]
        mask = (h != self.pad).astype(np.float32)
        count = mask.sum(axis=1, keepdims=True)
        m = mask * np.maximum(weight, 0.05) if self.config["completion_weighting"] and weight is not None else mask
        if self.config["user_pooling"] == "mean":
            pool = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
        else:
            keys = items + self.w["position"][None]
            logits = keys @ self.w["query"] / np.sqrt(self.config["embedding_dim"])
            e = np.exp(logits - logits.max(axis=1, keepdims=True)) * m
            pool = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-9)
        parts = [(pool[:, :, None] * items).sum(axis=1), np.log1p(count)]
        if self.config["use_user_id"]:
            u = np.full(len(h), self.unknown_user) if user is None else np.asarray(user)
            if "user_known" in self.w:
                u = self.w["user_known"][u]
            parts.append(self.w["user_embedding"][u])
        x = np.maximum(np.concatenate(parts, axis=1) @ self.w["hidden_kernel"] + self.w["hidden_bias"], 0.0)
        out = x @ self.w["out_kernel"] + self.w["out_bias"]
        q = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12) / float(self.config["temperature"])
        return self._tail(q, h, mask)


def _load(path: Path) -> Any:
    """``np.load`` of a file read whole through the path's own ``open``: a local ``Path`` or a
    ``upath.UPath`` on object storage (the model folder of a workdir given as a URL)."""
    with path.open("rb") as f:
        return np.load(io.BytesIO(f.read()))


def scoring_items(folder: Path, item_vectors: np.ndarray) -> np.ndarray:
    """The exported item matrix with each video's freshness folded in at the model's reference
    time (``scoring.json``; what publish used); unchanged for a model without freshness."""
    from recsys.scoring import ScoreLayout

    path = folder / "scoring.json"
    if not path.exists():
        return item_vectors
    scoring = json.loads(path.read_text())
    birth_path, from_event_path = folder / "item_birth.npy", folder / "item_birth_from_event.npy"
    if scoring.get("reference_ts") is None or not birth_path.exists():
        return item_vectors
    from_event = _load(from_event_path) if from_event_path.exists() else None
    return ScoreLayout.from_json(scoring).fold_freshness(
        item_vectors, _load(birth_path), scoring["reference_ts"], from_event
    )


class OnlineModel:
    """An exported model folder (``<model_root>/<version>/``) for scoring users from their recent
    watches in numpy: the API's online fallback and the refresher (``pipelines/refresher.py``).

    A user in the model's vocabulary is scored by the numpy user tower (their id + recent
    watches); a user the model never saw by the mean of their recent watches' item embeddings.
    Items are scored as the published lists were: freshness at the model's reference time."""

    def __init__(self, folder: Path) -> None:
        self.items: list[str] = json.loads((folder / "items.json").read_text())
        self.item_pos = {v: i for i, v in enumerate(self.items)}
        self.user_pos = {u: i for i, u in enumerate(json.loads((folder / "users.json").read_text()))}
        raw = _load(folder / "item_embeddings.npy")
        self.tower = NumpyUserTower(folder / NUMPY_TOWER_FILE, raw)
        self.item_vectors = scoring_items(folder, raw)
        self.max_history = int(self.tower.config["max_history"])
        self.excluded: dict[int, np.ndarray] = {}
        if (folder / EXCLUDED_FILE).exists():
            with _load(folder / EXCLUDED_FILE) as z:
                ptr, idx = z["indptr"], z["indices"]
                self.excluded = {int(u): idx[ptr[r] : ptr[r + 1]] for r, u in enumerate(z["users"])}

    def vectors(self, users: list[str], recents: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(query vectors [b, D], has_history [b] bool) for users and their recent watches (newest
        first). A user the model never saw: item to item. The user tower's history-only path (the
        unknown-user row, trained on the user_id_dropout share of examples) did much worse on the
        demo: newcomers who watched one topic-and-style cell got 0.46 of their answers sharing its
        topic or style, against 0.89 this way (chance 0.34; tests/e2e checks it over every cell)."""
        n = len(users)
        history = np.full((n, self.max_history), self.tower.pad, np.int64)
        for r, recent in enumerate(recents):
            known = [self.item_pos[v] for v in recent[: self.max_history] if v in self.item_pos][::-1]
            if known:
                history[r, self.max_history - len(known) :] = known
        has_history = (history != self.tower.pad).any(axis=1)
        out = np.zeros((n, self.item_vectors.shape[1]), np.float32)
        user_idx = np.array([self.user_pos.get(u, -1) for u in users], np.int64)
        seen, new = has_history & (user_idx >= 0), has_history & (user_idx < 0)
        if seen.any():
            out[seen] = self.tower(history[seen], None, user_idx[seen])
        if new.any():
            out[new] = self.tower.item_to_item(history[new])
        return out, has_history

    def recommend_many(
        self, users: list[str], recents: list[list[str]], k: int, skips: list[set[str]]
    ) -> list[list[tuple[str, float]] | None]:
        """Each user's top k videos not in their ``skips`` (None for a user none of whose recent
        watches is in the model)."""
        vecs, has_history = self.vectors(users, recents)
        scores = vecs @ self.item_vectors.T
        for r, skip in enumerate(skips):
            scores[r, [self.item_pos[v] for v in skip if v in self.item_pos]] = -np.inf
            # what the user's published list left out (all they watched before, unplayable videos)
            scores[r, self.excluded.get(self.user_pos.get(users[r], -1), [])] = -np.inf
        n = min(k, scores.shape[1])
        # numpy, not the compiled selection: the API loads no numba (its first call compiles)
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        return [
            [(self.items[i], float(s)) for i, s in zip(top[r], top_scores[r], strict=True) if np.isfinite(s)]
            if has_history[r]
            else None
            for r in range(len(users))
        ]

    def recommend(self, user_id: str, recent: list[str], k: int, skip: set[str]) -> list[tuple[str, float]] | None:
        """Top-k for one user from their recent watches (newest first); None when none is in the model."""
        return self.recommend_many([user_id], [recent], k, [skip])[0]


CONTENT = ("visual", "caption", "comments")


def export_numpy_item_tower(item_tower: Any, content: Any, config: dict[str, Any], path: Path) -> None:
    """Save what scoring a video from its content alone needs, outside TensorFlow (a video the
    model never saw: its id token is absent, as for a cold video): each modality's catalogue mean
    (``ItemContent.balanced``), the content projections, the fusion's weights, the fused layers,
    the bias head, and the content prior's basis (``recsys.model.data.content_prior``).
    ``item_tower``: one tower, or a list of an ensemble's members' (saved prefixed ``m<j>_``)."""
    members = list(item_tower) if isinstance(item_tower, list | tuple) else [item_tower]
    arrays: dict[str, np.ndarray] = {}
    for j, tower in enumerate(members):
        prefix = f"m{j}_" if len(members) > 1 else ""
        own = asdict(tower.cfg) if len(members) > 1 else config  # members differ in settings (modalities)
        arrays |= {prefix + k: v for k, v in _item_tower_arrays(tower, content, own).items()}
        if prefix:
            arrays[prefix + "config"] = _json_bytes(_item_meta(tower, own))
    prior_modalities: tuple[str, ...] = ()
    if config.get("content_prior"):
        from recsys.model.data import content_prior

        _, prior_modalities, arrays["prior_basis"], means = content_prior(
            content, int(config["content_prior_dim"]), tuple(config["modalities"])
        )
        arrays |= {f"prior_mean_{m}": v.astype(np.float32) for m, v in means.items()}
    meta = _item_meta(members[0], config) | {"prior_modalities": list(prior_modalities), "members": len(members)}
    arrays["config"] = _json_bytes(meta)
    with path.open("wb") as f:
        np.savez(f, **arrays)


def _item_meta(item_tower: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "fusion": config["fusion"],
        "active": sorted(item_tower.active),
        "hidden_dim": int(config["hidden_dim"]),
        "item_bias": bool(config.get("item_bias")),
        "freshness": bool(config.get("freshness")),
    }


def _item_tower_arrays(item_tower: Any, content: Any, config: dict[str, Any]) -> dict[str, np.ndarray]:
    item_tower.encode(np.zeros(1, np.int32))  # builds the layers of a tower never called yet
    arrays: dict[str, np.ndarray] = {}
    for m in CONTENT:
        a, present = getattr(content, m), getattr(content, f"{m}_mask") > 0
        arrays[f"{m}_mean"] = (
            a[present].mean(axis=0).astype(np.float32) if present.any() else np.zeros(a.shape[1], np.float32)
        )
        layer = item_tower.projections[m]
        if m in item_tower.active:
            arrays[f"{m}_kernel"], arrays[f"{m}_bias"] = layer.kernel.numpy(), layer.bias.numpy()
    fusion = item_tower.fusion
    if hasattr(fusion, "modality_logits"):
        arrays["modality_logits"] = fusion.modality_logits.numpy()
    if hasattr(fusion, "fusion_query"):
        arrays["fusion_query"] = fusion.fusion_query.numpy()
    if config.get("sentiment_input"):
        arrays["sentiment_vector"] = item_tower.sentiment_vector.numpy()
    for name in ("fuse", "out") + (("bias_head",) if config.get("item_bias") else ()):
        layer = getattr(item_tower, name)
        arrays[f"{name}_kernel"], arrays[f"{name}_bias"] = layer.kernel.numpy(), layer.bias.numpy()
    return arrays


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


class NumpyItemTower:
    """Item rows (``recsys.scoring.ScoreLayout``: embedding, bias column, content prior) for videos
    scored from their content alone, in numpy: what the TensorFlow item tower gives a cold video
    (an ensemble's: its members' rows combined by ``recsys.scoring.combine_members``). ``w``: the
    (first member's) weights."""

    MODALITIES = ("id", *CONTENT)

    def __init__(self, path: Path) -> None:
        with _load(path) as z:
            shared = {k: z[k] for k in z.files if k != "config"}
            self.meta = json.loads(z["config"].tobytes().decode())
        k = int(self.meta.get("members") or 1)
        prior = {n: v for n, v in shared.items() if n == "prior_basis" or n.startswith("prior_mean_")}
        self.member_weights: list[tuple[dict[str, np.ndarray], dict[str, Any]]] = []
        for j in range(k):
            own = _member(shared, k, j) | prior
            raw = own.pop("config", None)
            meta = self.meta if raw is None or k == 1 else self.meta | json.loads(raw.tobytes().decode())
            self.member_weights.append((own, meta))
        self.w = self.member_weights[0][0]

    def rows(self, content: Any) -> np.ndarray:
        """[n, layout.total] float32 for ``content`` (a ``recsys.model.ItemContent`` of new videos);
        the bias column holds the learned bias only (freshness is folded in for a time later)."""
        parts = [self._rows(w, meta, content) for w, meta in self.member_weights]
        return combine_members(parts, int(self.w["out_kernel"].shape[1]), query=False)

    def _tokens(self, w: dict[str, np.ndarray], meta: dict[str, Any], content: Any) -> tuple[np.ndarray, np.ndarray]:
        """(tokens [n, 4, hidden], mask [n, 4]) as ``ItemTower.tokens`` gives them, no id token."""
        n, hidden = content.num_items, meta["hidden_dim"]
        tokens = np.zeros((n, len(self.MODALITIES), hidden), np.float32)
        mask = np.zeros((n, len(self.MODALITIES)), np.float32)
        for j, m in enumerate(self.MODALITIES):
            if m not in meta["active"] or m == "id":
                continue
            present = getattr(content, f"{m}_mask").astype(np.float32)
            x = (getattr(content, m) - w[f"{m}_mean"]) * (present > 0)[:, None]
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 1e-12)
            mask[:, j] = present
            tokens[:, j] = _relu(x @ w[f"{m}_kernel"] + w[f"{m}_bias"]) * present[:, None]
        return tokens, mask

    def _fused(
        self, w: dict[str, np.ndarray], meta: dict[str, Any], tokens: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        if meta["fusion"] == "concat":
            return np.concatenate([tokens.reshape(len(tokens), -1), mask], axis=1)
        if meta["fusion"] == "weighted_sum":
            logits = np.broadcast_to(w["modality_logits"][None, :], mask.shape)
        else:
            logits = np.einsum("bmh,h->bm", tokens, w["fusion_query"]) / np.sqrt(meta["hidden_dim"])
        e = np.exp(logits - logits.max(axis=1, keepdims=True)) * mask
        weights = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-9)
        return (weights[:, :, None] * tokens).sum(axis=1)

    def _rows(self, w: dict[str, np.ndarray], meta: dict[str, Any], content: Any) -> np.ndarray:
        """One model's (member's) rows, weights ``w``."""
        from recsys.model.data import prior_inputs

        h = _relu(self._fused(w, meta, *self._tokens(w, meta, content)) @ w["fuse_kernel"] + w["fuse_bias"])
        if "sentiment_vector" in w:
            h = h + np.asarray(content.sentiment, np.float32)[:, None] * w["sentiment_vector"]
        out = h @ w["out_kernel"] + w["out_bias"]
        cols = [out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)]
        if meta["item_bias"]:
            cols.append(h @ w["bias_head_kernel"] + w["bias_head_bias"])
        elif meta["freshness"]:
            cols.append(np.zeros((len(h), 1), np.float32))
        if "prior_basis" in w:
            modalities = tuple(meta["prior_modalities"])
            # centred on the catalogue's means (a version from before them: not centred, as trained)
            kept = all(f"prior_mean_{m}" in w for m in modalities)
            means = {m: w[f"prior_mean_{m}"] for m in modalities} if kept else None
            cols.append(prior_inputs(content, modalities, means) @ w["prior_basis"])
        return np.concatenate(cols, axis=1).astype(np.float32)
