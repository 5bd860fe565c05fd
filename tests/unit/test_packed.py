import numpy as np
import pytest

from recsys import keys
from recsys.packed import VocabBytes, encode_matrix, encode_row_blocks


@pytest.mark.parametrize(
    "vocab",
    [
        [f"v{i}" * (i % 3 + 1) for i in range(500)] + ["é-ü:x"],  # ids of different lengths, non-ASCII
        [f"x{i:05d}" for i in range(501)],  # every id the same length
    ],
)
@pytest.mark.parametrize("short_rows", [False, True])
def test_rows_equal_the_one_list_encoder(vocab, short_rows):
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(vocab), (200, 30))
    scores = rng.normal(size=(200, 30)).astype(np.float32)
    index[8, 0] = len(vocab) - 1
    if short_rows:  # top-k pads a row with -1 where fewer than k videos are left
        index[5, 10:], index[6, :], index[7, 1:] = -1, -1, -1
    blocks = list(encode_row_blocks(VocabBytes(vocab), index, scores, block_bytes=10_000))
    assert len(blocks) > 1
    got = [v for block in blocks for v in block]
    for i in range(len(index)):
        n = int((index[i] >= 0).sum())
        assert got[i] == keys.encode_items([vocab[j] for j in index[i, :n]], scores[i, :n].tolist()), i
        assert keys.decode_items(got[i]) == [
            (vocab[j], float(s)) for j, s in zip(index[i, :n], scores[i, :n], strict=True)
        ]


def test_bad_input_is_refused():
    vocab = VocabBytes(["a", "b"])
    with pytest.raises(ValueError, match="pad the tail"):
        encode_matrix(vocab, np.array([[-1, 0]]), np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode_matrix(vocab, np.array([[2, 0]]), np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="differ"):
        encode_matrix(vocab, np.array([[1, 0]]), np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="newline"):
        VocabBytes(["ok", "bad\nid"])
