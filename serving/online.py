"""Online scoring in the API for users without a precomputed list but with recent watches.

The scoring is ``recsys.online.OnlineModel``'s (shared with the refresher). Loads the live version's exported model folder (``<model_root>/<version>/``: item embeddings, id
maps and the numpy copy of the user tower) on first use. numpy is imported here, never on the
cache-hit path; a version folder that is absent turns this fallback off (popular is served).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from recsys.online import OnlineModel
    from recsys.search import SearchIndex

log = logging.getLogger(__name__)
T = TypeVar("T")


class _PerVersion(Generic[T]):
    """One object per model version, built lazily from ``<model_root>/<version>`` by ``load`` (only
    the live version's kept); None, remembered, when off or when the folder cannot be read.
    ``model_root``: a folder, or a URL (``pipelines.storage.location``: the models of a workdir on
    s3://...), resolved on first use, so numpy is not imported before then."""

    what = "a model version's files"

    def __init__(self, model_root: str) -> None:
        self.root = model_root or None
        self._loaded: dict[str, T | None] = {}

    @property
    def configured(self) -> bool:
        return self.root is not None

    def load(self, folder: object) -> T:
        raise NotImplementedError

    def get(self, version: str) -> T | None:
        if not self.configured:
            return None
        if version not in self._loaded:
            from upath import UPath  # a local path, file:// or any fsspec URL, as the workdir is given

            folder = UPath(self.root) / version
            try:
                self._loaded = {version: self.load(folder)}
            except (OSError, ValueError, KeyError) as exc:
                log.warning("%s off for %s: cannot load %s (%s)", self.what, version, folder, exc)
                self._loaded = {version: None}
        return self._loaded[version]


class OnlineScorers(_PerVersion["OnlineModel"]):
    """The live version's ``recsys.online.OnlineModel`` (the numpy user tower)."""

    what = "online scoring"

    def load(self, folder: object) -> OnlineModel:
        from recsys.online import OnlineModel  # numpy: never on the cache-hit path

        return OnlineModel(folder)  # type: ignore[arg-type]


class SearchIndexes(_PerVersion["SearchIndex"]):
    """The live version's ``recsys.search.SearchIndex`` (the text encoder loaded once); off unless
    both the model root and the ONNX text encoder are set."""

    what = "search"

    def __init__(self, model_root: str, text_encoder_dir: str, alpha: float, query_cache: int = 10_000) -> None:
        super().__init__(model_root)
        self.encoder_dir, self.alpha, self.query_cache = text_encoder_dir or None, alpha, query_cache
        self._encoder: object | None = None

    @property
    def configured(self) -> bool:
        return self.root is not None and self.encoder_dir is not None

    def load(self, folder: object) -> SearchIndex:
        from recsys.search import SearchIndex
        from recsys.text_onnx import OnnxTextEncoder, QueryCache

        if self._encoder is None:  # one encoder and query cache for every version (queries embed alike)
            self._encoder = QueryCache(OnnxTextEncoder(str(self.encoder_dir), num_threads=1), self.query_cache)
        return SearchIndex(folder, self._encoder, self.alpha)


class VideoSummaries(_PerVersion[dict[str, dict[str, object]]]):
    """The live version's video summaries (``SUMMARIES_FILE`` in its model folder: each video's
    summary frame times and strip file) and the strips themselves (JPEG files under
    ``summary_root``, by default ``<model_root>/../summaries``, the workdir's)."""

    what = "video summaries"

    def __init__(self, model_root: str, summary_root: str = "") -> None:
        super().__init__(model_root)
        self.strips = summary_root or None

    def load(self, folder: object) -> dict[str, dict[str, object]]:
        import json

        from recsys.online import SUMMARIES_FILE

        return json.loads((folder / SUMMARIES_FILE).read_text())  # type: ignore[operator]

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
