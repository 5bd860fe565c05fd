"""Online scoring in the API for users without a precomputed list but with recent watches.

The scoring is ``recsys.online.OnlineModel``'s (shared with the refresher). Loads the live version's exported model folder (``<model_root>/<version>/``: item embeddings, id
maps and the numpy copy of the user tower) on first use. numpy is imported here, never on the
cache-hit path; a version folder that is absent turns this fallback off (popular is served).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsys.online import OnlineModel
    from recsys.search import SearchIndex

log = logging.getLogger(__name__)


class OnlineScorers:
    """One scorer per model version, loaded lazily; remembers versions that have no folder."""

    def __init__(self, model_root: str) -> None:
        # a folder, or a URL (``pipelines.storage.location``: the models of a workdir on s3://...),
        # resolved on first use (numpy is not imported before then)
        self.root = model_root or None
        self._loaded: dict[str, OnlineModel | None] = {}

    def get(self, version: str) -> OnlineModel | None:
        if self.root is None:
            return None
        if version not in self._loaded:
            from upath import UPath  # a local path, file:// or any fsspec URL, as the workdir is given

            folder = UPath(self.root) / version
            try:
                from recsys.online import OnlineModel  # numpy: never on the cache-hit path

                self._loaded = {version: OnlineModel(folder)}  # keep only the live version's arrays
            except (OSError, ValueError, KeyError) as exc:
                log.warning("online scoring off for %s: cannot load %s (%s)", version, folder, exc)
                self._loaded = {version: None}
        return self._loaded[version]


class SearchIndexes:
    """The live version's ``recsys.search.SearchIndex``, loaded lazily (the text encoder once, the
    index per version); None when search is not configured or the version's folder cannot be read."""

    def __init__(self, model_root: str, text_encoder_dir: str, alpha: float) -> None:
        self.root, self.encoder_dir, self.alpha = model_root or None, text_encoder_dir or None, alpha
        self._encoder: object | None = None
        self._loaded: dict[str, SearchIndex | None] = {}

    @property
    def configured(self) -> bool:
        return self.root is not None and self.encoder_dir is not None

    def get(self, version: str) -> SearchIndex | None:
        if not self.configured:
            return None
        if version not in self._loaded:
            from upath import UPath

            folder = UPath(self.root) / version
            try:
                from recsys.search import SearchIndex
                from recsys.text_onnx import OnnxTextEncoder

                if self._encoder is None:
                    self._encoder = OnnxTextEncoder(str(self.encoder_dir), num_threads=1)
                self._loaded = {version: SearchIndex(folder, self._encoder, self.alpha)}
            except (OSError, ValueError, KeyError) as exc:
                log.warning("search off for %s: cannot load %s (%s)", version, folder, exc)
                self._loaded = {version: None}
        return self._loaded[version]


class VideoSummaries:
    """The live version's video summaries (``summaries.json`` in its model folder: each video's
    summary frame times and strip file) and the strips themselves (JPEG files under
    ``summary_root``, by default ``<model_root>/../summaries``, the workdir's), loaded lazily."""

    def __init__(self, model_root: str, summary_root: str = "") -> None:
        self.root, self.strips = model_root or None, summary_root or None
        self._loaded: dict[str, dict[str, dict[str, object]] | None] = {}

    def get(self, version: str) -> dict[str, dict[str, object]] | None:
        if self.root is None:
            return None
        if version not in self._loaded:
            import json

            from upath import UPath

            path = UPath(self.root) / version / "summaries.json"
            try:
                self._loaded = {version: json.loads(path.read_text())}
            except (OSError, ValueError) as exc:
                log.warning("video summaries off for %s: cannot read %s (%s)", version, path, exc)
                self._loaded = {version: None}
        return self._loaded[version]

    def strip(self, name: str) -> bytes | None:
        """A strip's JPEG bytes (None when the file is not there)."""
        from upath import UPath

        if self.root is None or "/" in name or not name.endswith(".jpg"):
            return None
        folder = UPath(self.strips) if self.strips else UPath(self.root).parent / "summaries"
        try:
            return (folder / name).read_bytes()
        except OSError:
            return None
