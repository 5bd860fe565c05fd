"""Reciprocal-rank fusion and BM25, the lexical half of search (``recsys.search``)."""

import numpy as np


def test_rrf_scores_by_hand():
    from recsys.search import fuse, rrf_scores

    a, b = np.array([2, 0, 1]), np.array([0, 3])
    score = rrf_scores([a, b], 5, c=60.0)
    # video 0: rank 2 in a, rank 1 in b; video 2: rank 1 in a only; video 4: in neither
    np.testing.assert_allclose(score, [1 / 62 + 1 / 61, 1 / 63, 1 / 61, 1 / 62, 0.0])
    assert fuse([a, b], 3).tolist() == [0, 2, 3]
    assert fuse([a, b], 10).tolist() == [0, 2, 3, 1]  # only videos in some list
    assert fuse([np.zeros(0, np.int64)], 5).tolist() == []


def test_bm25_scores_only_videos_with_a_query_word():
    from recsys.search import LexicalIndex

    index = LexicalIndex(["Toy Story animation", "Heat crime thriller", "Toy soldiers war", ""])
    scores = index.scores("toy story")
    assert scores[0] > scores[2] > 0 and scores[1] == scores[3] == 0
    assert not index.scores("the of").any()  # stop words only: nothing matches
