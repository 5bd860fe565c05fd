import numpy as np
import pandas as pd

from recsys import baselines
from recsys.model import ItemContent


def _train():
    # users 0,1 watch items 0 and 1 together; user 2 watches item 2 and 3; user 3 watched item 0
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 0)]
    return pd.DataFrame(pairs, columns=["user_idx", "item_idx"])


def test_popularity_ranks_by_count():
    rank = baselines.fit_popularity(_train(), 4)(np.array([3]), [np.array([0])], 3)
    # counts: item0 3, item1 2, item2 1, item3 1 (tie broken by lower index); item 0 excluded
    assert rank.tolist() == [[1, 2, 3]]


def test_item_knn_recommends_co_watched_items():
    rank = baselines.fit_item_knn(_train(), 4, 4)(np.array([3]), [np.array([0])], 2)
    # user 3 watched item 0; cosine(0, 1) = 2 / (sqrt 3 * sqrt 2) > 0, items 2 and 3 never co-watched
    assert rank[0, 0] == 1


def test_als_scores_every_user():
    rank = baselines.fit_als(_train(), 4, 4, factors=4)(np.arange(4), [np.zeros(0, int)] * 4, 2)
    assert rank.shape == (4, 2) and (rank >= 0).all()


def test_content_only_follows_the_profile():
    vis = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]], np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    content = ItemContent(vis, ones, np.zeros((4, 2), np.float32), zeros, np.zeros((4, 2), np.float32), zeros)
    scorer = baselines.fit_content_only(_train(), 4, content)
    # user 3 watched item 0 (visual [1, 0]): the closest unseen item is item 1
    assert scorer(np.array([3]), [np.array([0])], 1).tolist() == [[1]]
    # user 2 watched items 2 and 3 (visual near [0, 1]): items 1 then 0 remain, 1 is closer
    assert scorer(np.array([2]), [np.array([2, 3])], 2).tolist() == [[1, 0]]
