"""Comment sentiment per video (VADER, offline) and the evaluation's sentiment cohorts."""

from __future__ import annotations

import numpy as np

from pipelines.evaluate import sentiment_cohorts
from pipelines.text_features import comment_sentiment


def test_each_video_gets_its_comments_weighted_sentiment():
    texts = ["I love this, wonderful!", "great video", "this is terrible and boring", "Das ist wunderbar", "ok"]
    rows = np.array([0, 0, 1, 2, 2])
    weights = np.array([1.0, 3.0, 1.0, 1.0, 1.0])
    score, coverage = comment_sentiment(texts, weights, rows, 4)
    assert score[0] > 0.5 and score[1] < -0.3
    assert abs(score[2]) < 0.3 and coverage[2] == 0.5  # German: the lexicon reads "ok" only
    assert coverage[0] == 1.0 and np.isnan(score[3]) and np.isnan(coverage[3])  # no comments
    # weights count: the heavier comment pulls the mean towards it
    light, _ = comment_sentiment(texts[:2], np.array([1.0, 0.0001]), np.array([0, 0]), 1)
    heavy, _ = comment_sentiment(texts[:2], np.array([0.0001, 1.0]), np.array([0, 0]), 1)
    assert light[0] != heavy[0]
    empty_score, empty_cov = comment_sentiment([], np.zeros(0), np.zeros(0, np.int64), 2)
    assert np.isnan(empty_score).all() and np.isnan(empty_cov).all()


def test_sentiment_cohorts_count_only_the_band_s_videos():
    ranked = np.array([[0, 1, 2], [2, 1, 0]])
    relevant = [{0, 2}, {1}]
    sentiment = np.array([0.8, np.nan, -0.6])
    out = sentiment_cohorts({"m": ranked}, np.array([10, 11]), relevant, sentiment, k=3)
    assert set(out) == {"sentiment_positive", "sentiment_negative"}  # video 1 has no comments
    assert out["sentiment_positive"]["m"]["users"] == 1 and out["sentiment_positive"]["m"]["ndcg@3"] == 1.0
    assert out["sentiment_negative"]["m"]["recall@3"] == 1.0
