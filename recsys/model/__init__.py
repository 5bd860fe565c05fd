"""The two-tower retrieval model (TensorFlow Recommenders).

* ``config``: ``TwoTowerConfig`` and ``ensure_keras2`` (standard library only).
* ``data``: item content, history windows, the content prior, training examples, the validation
  set, the score layout of a config (numpy).
* ``towers``: the item and user towers as Keras models (imports TensorFlow).
* ``training``: the loss, the training loop with early stopping, ``TrainedModel`` (imports
  TensorFlow and TFRS).
* ``ensemble``: several trained models served as one, the mean of their scores (imports TensorFlow).

This package's namespace holds the numpy-only names; the TensorFlow modules are imported by name
(``from recsys.model.training import train_two_tower``) where a model is built or trained.
"""

from recsys.model.config import FUSIONS, MODALITIES, TwoTowerConfig, ensure_keras2
from recsys.model.data import (
    ItemContent,
    TrainingExamples,
    ValidationSet,
    content_prior_vectors,
    history_windows,
    last_history,
    layout_of,
)

__all__ = [
    "FUSIONS",
    "MODALITIES",
    "ItemContent",
    "TrainingExamples",
    "TwoTowerConfig",
    "ValidationSet",
    "content_prior_vectors",
    "ensure_keras2",
    "history_windows",
    "last_history",
    "layout_of",
]
