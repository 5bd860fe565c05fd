import numpy as np
import pandas as pd

from pipelines.text_features import caption_text, clean_text, compute_text_features


class BagOfWordsEncoder:
    """A fake for this unit test of the aggregation code around the encoder."""

    name, version, dim = "bow", "1", 4
    vocab = {"cat": 0, "dog": 1, "car": 2, "sun": 3}

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                if w in self.vocab:
                    out[i, self.vocab[w]] += 1
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return np.where(n > 0, out / np.maximum(n, 1e-9), 0)


def test_clean_text_and_caption():
    assert clean_text("see https://x.y/z now\x00\x07  ok", 100) == "see now ok"
    assert clean_text("a" * 50, 10) == "a" * 10
    assert caption_text(" Title ", "", "t1|t2, t3") == "Title t1 t2 t3"
    assert caption_text("", "", "") == ""


def test_text_features_masks_and_aggregates():
    videos = pd.DataFrame(
        {"video_id": ["a", "b", "c"], "title": ["cat", "", "car"], "description": ["", "", ""], "tags": ["", "", ""]}
    )
    comments = pd.DataFrame(
        {
            "video_id": ["a", "a", "a", "c"],
            "text": ["dog", "dog", "sun", "   "],  # a duplicate, and an empty one after cleaning
            "likes": [5, 5, 1, 0],
            "comment_id": ["1", "2", "3", "4"],
        }
    )
    f = compute_text_features(videos, comments, BagOfWordsEncoder(), max_comments=20, max_chars=100).set_index(
        "video_id"
    )
    assert f["has_caption"].tolist() == [True, False, True]
    assert f.loc["b", "caption_embedding"].tolist() == [0, 0, 0, 0]
    assert f["num_comments"].tolist() == [2, 0, 0]  # dog (deduplicated) + sun
    # weighted by 1 + ln(1 + likes): dog 1 + ln 6 = 2.7918, sun 1 + ln 2 = 1.6931, renormalised
    w = np.array([0, 1 + np.log(6), 0, 1 + np.log(2)])
    np.testing.assert_allclose(f.loc["a", "comments_embedding"], w / np.linalg.norm(w), atol=1e-6)
    assert not f.loc["c", "has_comments"]
