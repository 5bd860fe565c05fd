import numpy as np
import pytest

from cache import keys
from cache.packed import VocabBytes, encode_matrix, encode_row_blocks


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
    got = [buf[off[i] : off[i + 1]].tobytes() for buf, off in blocks for i in range(len(off) - 1)]
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


def test_resp_commands_parse_back():
    """The compiled RESP builders against redis-py's packer (``cache.resp.pack``)."""
    from cache.kernels import resp_keyed_commands, resp_multikey_command
    from cache.packed import concat_bytes
    from cache.resp import pack

    ids = ["u1", "é" * 7, "x" * 120]
    values = [b"", b"v" * 9, bytes(range(256)) * 5]
    id_data, id_starts = concat_bytes([u.encode() for u in ids])
    val_data, val_off = concat_bytes(values)
    head = np.frombuffer(b"*5\r\n$3\r\nSET\r\n", np.uint8)
    tail = np.frombuffer(b"$2\r\nEX\r\n$5\r\n86400\r\n", np.uint8)
    prefix = np.frombuffer(b"vidrec:ns:v:1:u:", np.uint8)
    cmds, ends = resp_keyed_commands(head, prefix[:], id_data, id_starts, 0, val_data, val_off, tail)
    expected = [
        pack([b"SET", b"vidrec:ns:v:1:u:" + u.encode(), v, b"EX", 86400]) for u, v in zip(ids, values, strict=True)
    ]
    assert cmds.tobytes() == b"".join(expected)
    assert ends.tolist() == np.cumsum([len(e) for e in expected]).tolist()
    # the second and third ids only, as a slice of the starts (absolute offsets into id_data)
    got = resp_multikey_command(np.frombuffer(b"*3\r\n$6\r\nEXISTS\r\n", np.uint8), prefix, id_data, id_starts[1:])
    assert got.tobytes() == pack([b"EXISTS", *(b"vidrec:ns:v:1:u:" + u.encode() for u in ids[1:])])
