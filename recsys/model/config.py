"""The two-tower's settings (``TwoTowerConfig``) and the one process-wide switch TensorFlow
Recommenders needs (``ensure_keras2``). Standard library and numpy only: configs are built where
TensorFlow must not load (DAG parsing, the CLI's argument parsing)."""

from __future__ import annotations

import os
from dataclasses import dataclass

FUSIONS = ("concat", "weighted_sum", "attention")
MODALITIES = ("id", "visual", "caption", "comments")


def ensure_keras2() -> None:
    """Make ``import tensorflow`` give tf-keras (Keras 2); must run before TF's first import."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_USE_LEGACY_KERAS"] != "1":
        raise RuntimeError("TF_USE_LEGACY_KERAS must be 1: TensorFlow Recommenders refuses Keras 3")


@dataclass(frozen=True)
class TwoTowerConfig:
    embedding_dim: int = 64
    id_dim: int = 32
    hidden_dim: int = 128
    max_history: int = 20
    use_user_id: bool = True
    user_pooling: str = "mean"
    """How the user tower pools its history: mean, or attention (learned query, recency by position)."""
    fusion: str = "concat"
    modalities: tuple[str, ...] = ("id", "visual", "caption", "comments")
    """Which item-tower inputs are used (the rest are masked out): for ablations, e.g. ("id",)."""
    completion_weighting: bool = False
    """Weight each history item by its watch completion (0..1; 1 where unknown) when pooling."""
    epochs: int = 20
    """The most epochs; with a validation set, early stopping may end training sooner."""
    early_stopping_patience: int = 2
    """Stop after this many epochs without a better validation NDCG@10 (0: train all epochs)."""
    validation_fraction: float = 0.1
    """Each user's last share of training events (by time) held out for early stopping (0: none)."""
    refit_after_validation: bool = True
    """After early stopping, train again on all training events for the best epoch count."""
    batch_size: int = 256
    learning_rate: float = 0.003
    weight_average_epochs: float = 0.0
    """If > 0, the weights kept (scored on validation each epoch, restored at the best epoch,
    exported) are an exponential moving average of the trained ones over about this many epochs
    (decay 1 - 1 / (this x batches per epoch)); 0: the last step's weights. Off by default: at 1 it
    smoothed every validation curve (the demo trained 15 epochs instead of 6) but moved test
    NDCG@10 both ways (seed 42, `vidrec run --set weight_average_epochs=1`: demo global_time 0.4058
    -> 0.4117, its cold videos 0.345 -> 0.454; demo user_time 0.4082 -> 0.3925, cold 0.282 -> 0.181;
    MovieLens user_time 0.1479 -> 0.1455). Costs about 4% more training time (a copy per batch)."""
    temperature: float = 0.1
    logq_correction: bool = True
    id_dropout: float = 0.1
    modality_dropout: float = 0.0
    """Share of training items whose each content modality (visual, caption, comments) is masked
    out, independently: the tower learns to score from any subset, so one strong modality cannot
    crowd out the others."""
    user_id_dropout: float = 0.1
    """Share of training examples whose user id is replaced by the unknown-user id, so that row is
    trained and a new user is scored from their history alone."""
    item_bias: bool = True
    """A learned per-video bias (from the item tower's fused features, so a new video gets one from
    its content): how watchable a video is whoever the user."""
    freshness: bool = True
    """A learned bias by the video's age at the time of each watch (log2-hour buckets); a video
    not yet published at an event's time is never its negative. Scored at a reference time."""
    content_prior: bool = True
    """Add the content-only similarity (user's mean content vector . video's content vector, the
    pretrained encoders' view, reduced to ``content_prior_dim`` by SVD) to every score, with a
    learned weight: a video with no training signal is still ranked by what it shows and says."""
    content_prior_dim: int = 64
    content_prior_init: float = 0.1
    """The prior's learned weight starts at this / temperature (1: the embeddings' own scale).
    MovieLens user_time NDCG@10 0.156 from 0.1 vs 0.137 from 1 (the embeddings learn more of the
    co-watching when the prior starts small, and the weight grew to 5); the demo, whose content
    tells its topics, did better from 1 (0.410 vs 0.337): ``AUTO_CANDIDATES`` tries it."""
    uniform_negatives: int = 256
    """Videos drawn uniformly from the whole catalogue as extra negatives per batch, besides the
    batch's positives (mixed negative sampling): unwatched and rare videos are seen as negatives."""
    id_dropout_frequency: float = 0.0
    """If > 0 (kappa), a video watched c times keeps its id with probability (1 - id_dropout) x
    c / (c + kappa): rare videos learn to be scored from content, like new ones."""
    user_id_min_events: int = 0
    """Users with fewer training events than this use the unknown-user row instead of their own id."""
    content_loss_weight: float = 1.0
    """If > 0, a second softmax over the same batch scores every candidate from its content alone
    (ids masked, as for a video no one has watched yet), added to the loss with this weight: the
    content path is trained on every batch, not only on the examples whose id dropout fired."""
    tune_new_videos: bool = True
    """Choose on the validation split how videos without training events are scored (their
    embedding scaled down, their bias lifted: ``ScoreLayout.new_video_scale``/``new_video_offset``,
    ``pipelines.fitting.choose_new_video_scoring``); False: as the tower gives them."""
    tune_prior_weight: bool = True
    """Choose on the validation split a multiplier of the content prior's learned weight
    (``pipelines.fitting.PRIOR_WEIGHT_FACTORS``, ``choose_prior_weight``): how much the history's
    content similarity counts in every score; False: as trained."""
    sentiment_input: bool = False
    """Offer each video's comment sentiment (``ItemContent.sentiment``, -1..1, 0 without comments)
    to the item tower: a learned vector, scaled by it, added to the fused features (so to the
    embedding and the bias). Off by default: it did not help on the demo or MovieLens
    (``docs/results.md``)."""
    ensemble_members: int = 3
    """Tuning (``pipelines.fitting.auto_tune``) may serve up to this many of its trials as one, the
    mean of their scores (``pipelines.fitting.choose_ensemble``, ``recsys.model.ensemble``): each is
    refit, so training takes up to this many final fits. 1: the chosen trial alone."""
    seed: int = 42

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.user_pooling not in ("mean", "attention"):
            raise ValueError(f"user_pooling must be mean or attention, got {self.user_pooling!r}")
        object.__setattr__(self, "modalities", tuple(self.modalities))  # JSON round trips give lists
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        for name in (
            "embedding_dim",
            "id_dim",
            "hidden_dim",
            "max_history",
            "epochs",
            "batch_size",
            "content_prior_dim",
            "ensemble_members",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.content_prior_init <= 0:
            raise ValueError(f"content_prior_init must be positive, got {self.content_prior_init}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0.0 <= self.user_id_dropout < 1.0:
            raise ValueError(f"user_id_dropout must be in [0, 1), got {self.user_id_dropout}")
        if self.early_stopping_patience < 0:
            raise ValueError(f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if (
            min(self.uniform_negatives, self.id_dropout_frequency, self.user_id_min_events, self.content_loss_weight)
            < 0
        ):
            raise ValueError(
                "uniform_negatives, id_dropout_frequency, user_id_min_events and content_loss_weight must be >= 0"
            )
        if self.weight_average_epochs < 0:
            raise ValueError(f"weight_average_epochs must be >= 0, got {self.weight_average_epochs}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
