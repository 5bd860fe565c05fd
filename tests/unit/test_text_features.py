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


def test_recent_and_liked_comments_weigh_more():
    videos = pd.DataFrame({"video_id": ["a"], "title": ["x"], "description": [""], "tags": [""]})
    day = 86400
    comments = pd.DataFrame(
        {
            "video_id": ["a", "a"],
            "text": ["cat", "car"],
            "likes": [0, 0],
            "comment_id": ["1", "2"],
            "created_at": [100 * day - 30 * day, 100 * day],  # "cat" is one half-life old
        }
    )
    f = compute_text_features(videos, comments, BagOfWordsEncoder(), 20, 100, now_epoch_s=100 * day, half_life_days=30)
    # weights: cat 0.5, car 1.0 -> [0.5, 0, 1, 0] normalised
    w = np.array([0.5, 0, 1.0, 0])
    np.testing.assert_allclose(f.loc[0, "comments_embedding"], w / np.linalg.norm(w), atol=1e-6)
    # capped at one comment: the heavier (newer) one wins
    f1 = compute_text_features(videos, comments, BagOfWordsEncoder(), 1, 100, now_epoch_s=100 * day, half_life_days=30)
    assert f1.loc[0, "num_comments"] == 1 and f1.loc[0, "comments_embedding"][2] == 1.0


def test_years_old_comments_keep_their_embedding_and_sentiment():
    """MovieLens tags are a decade old at the run date: their weights are only compared with each
    other (a 0.5 ** 120 weight once underflowed the normalisation, leaving a zero vector)."""
    videos = pd.DataFrame({"video_id": ["a"], "title": ["x"], "description": [""], "tags": [""]})
    day = 86400
    comments = pd.DataFrame(
        {
            "video_id": ["a", "a"],
            "text": ["cat great", "car"],
            "likes": [0, 0],
            "comment_id": ["1", "2"],
            "created_at": [0, 30 * day],  # "cat great" one half-life older than "car"
        }
    )
    now = 30 * day + 3650 * day  # ten years after the newer one
    f = compute_text_features(videos, comments, BagOfWordsEncoder(), 20, 100, now_epoch_s=now, half_life_days=30)
    w = np.array([0.5, 0, 1.0, 0])  # as if they were new: cat 0.5, car 1.0
    np.testing.assert_allclose(f.loc[0, "comments_embedding"], w / np.linalg.norm(w), atol=1e-6)
    # VADER: "great" is positive, "car" neutral; the average weighs them 0.5 and 1
    assert 0.1 < f.loc[0, "sentiment"] < 0.5


def test_cached_encoder_encodes_each_text_once(tmp_path):
    from pipelines.text_features import CachedTextEncoder

    class Counting(BagOfWordsEncoder):
        calls: list[list[str]] = []

        def encode(self, texts):
            self.calls.append(list(texts))
            return super().encode(texts)

    base = Counting()
    enc = CachedTextEncoder(base, tmp_path / "cache.parquet")
    first = enc.encode(["cat", "dog", "cat"])
    assert len(base.calls) == 1 and sorted(base.calls[0]) == ["cat", "dog"]  # "cat" once
    enc.save()
    again = CachedTextEncoder(base, tmp_path / "cache.parquet")  # a new run reads the cache
    np.testing.assert_array_equal(again.encode(["dog", "cat", "cat"]), first[[1, 0, 2]])
    assert len(base.calls) == 1 and again.misses == 0 and again.hits == 3


def test_non_utf8_bytes_in_a_csv_do_not_stop_ingest(tmp_path):
    from pipelines.ingest import read_table

    (tmp_path / "comments.csv").write_bytes(b"video_id,text\nv1,caf\xe9 ol\xe9 \xff\xfe\nv2,fine\n")
    df = read_table(tmp_path, "comments")
    assert df["text"].tolist() == ["caf\ufffd ol\ufffd \ufffd\ufffd", "fine"]


def test_header_only_comments_table_gives_caption_only_features(tmp_path):
    """A comments.csv with a header and no rows (day one), read as ingest reads it."""
    from pipelines.ingest import read_table
    from recsys.contract import validate_source

    (tmp_path / "comments.csv").write_text("video_id,text\n")
    videos = pd.DataFrame({"video_id": ["a", "b"], "title": ["cat", "dog"]})
    events = pd.DataFrame(columns=["user_id", "video_id", "ts"])
    src = validate_source(videos, read_table(tmp_path, "comments"), events)
    f = compute_text_features(src.videos, src.comments, BagOfWordsEncoder(), max_comments=20, max_chars=100)
    assert f["has_caption"].tolist() == [True, True] and f["num_comments"].tolist() == [0, 0]
    assert not f["has_comments"].any()
