"""Several trained two-towers (tuning trials of different settings) served as one (imports TensorFlow).

The ensemble's score is the mean of its members' scores, and still one dot product: its item
rows hold the members' embeddings side by side and their mean bias, its query vectors the
members' query embeddings divided by the number of members (``recsys.scoring.combine_members``,
``ScoreLayout.of_ensemble``). So publishing, the API, the numpy towers and the Redis lists serve
it unchanged, with ``members x embedding_dim`` embedding columns.

Why: on a small validation set the tuning choice, not only the seed, moves test NDCG@10 much. On
the demo source under global_time (this host), four runs tuned at seeds 42, 1, 2 and 3 chose four
settings and scored 0.410, 0.387, 0.454 and 0.417; the mean of their four scores 0.454, of any two
more than the two's mean (0.410, 0.453, 0.450 for 42+1, 42+2, 1+2). Two models of one setting from
two seeds gained nothing (0.4095 vs 0.4100; three: 0.4113). Which trials to serve together is
chosen on validation (``pipelines.fitting.choose_ensemble``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from recsys.model.training import TrainResult
from recsys.scoring import ScoreLayout, combine_members


class EnsembleUserTower(tf.keras.Model):
    """The members' user towers as one: the same inputs, the combined query vector."""

    def __init__(self, members: list[Any], dim: int) -> None:
        super().__init__(name="ensemble_user_tower")
        self.members = list(members)
        self.dim = dim

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        outs = [m(inputs, training=training) for m in self.members]
        k = float(len(outs))
        emb = [o[:, : self.dim] / k for o in outs]
        rest = tf.add_n([o[:, self.dim :] for o in outs]) / k
        return tf.concat([*emb, rest], axis=-1)


@dataclass
class EnsembleResult(TrainResult):
    """``TrainResult`` of an ensemble: ``item_tower`` is the first member's (its fusion weights
    are reported), ``user_tower`` the ``EnsembleUserTower``; ``members`` the members' results."""

    members: list[TrainResult] = field(default_factory=list)

    def item_matrix(self) -> np.ndarray:
        """The members' rows as each scores them (its own new-video scoring), combined; then the
        ensemble's own new-video scoring (the identity unless one was chosen for the ensemble)."""
        rows = combine_members([m.item_matrix() for m in self.members], self.member_dim, query=False)
        if self.new_items is not None and self.new_items.any():
            rows[self.new_items] = self.layout.new_video_rows(rows[self.new_items])
        return rows

    def item_matrix_as_trained(self) -> np.ndarray:
        return combine_members([m.item_matrix_as_trained() for m in self.members], self.member_dim, query=False)

    @property
    def member_dim(self) -> int:
        return self.layout.dim // len(self.members)


def ensemble_of(members: list[TrainResult]) -> TrainResult:
    """One model scoring the mean of the members' scores (a single member: itself). The members
    share the data and layout (their settings may differ); the first one's history and new-video
    record are kept."""
    if len(members) == 1:
        return members[0]
    first = members[0]
    layout = ScoreLayout.of_ensemble([m.layout for m in members])
    return EnsembleResult(
        item_tower=first.item_tower,
        user_tower=EnsembleUserTower([m.user_tower for m in members], first.layout.dim),
        layout=layout,
        item_birth=first.item_birth,
        num_items=first.num_items,
        new_items=first.new_items,
        birth_from_event=first.birth_from_event,
        history={**first.history, "ensemble_members": [float(len(members))]},
        members=list(members),
    )
