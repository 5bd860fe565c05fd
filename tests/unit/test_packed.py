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
    from cache.kernels import resp_grouped_commands, resp_keyed_commands, resp_multikey_command
    from cache.packed import concat_bytes
    from cache.resp import pack

    ids = ["u1", "é" * 7, "x" * 120]
    values = [b"", b"v" * 9, bytes(range(256)) * 5]
    id_data, id_starts = concat_bytes([u.encode() for u in ids])
    val_data, val_off = concat_bytes(values)
    head = np.frombuffer(b"*5\r\n$3\r\nSET\r\n", np.uint8)
    tail = np.frombuffer(b"$2\r\nEX\r\n$5\r\n86400\r\n", np.uint8)
    prefix, suffix = np.frombuffer(b"vidrec:ns:v:1:u:{", np.uint8), np.frombuffer(b"}", np.uint8)
    cmds, ends = resp_keyed_commands(head, prefix[:], suffix, id_data, id_starts, 0, val_data, val_off, tail)
    key = [b"vidrec:ns:v:1:u:{" + u.encode() + b"}" for u in ids]
    expected = [pack([b"SET", k, v, b"EX", 86400]) for k, v in zip(key, values, strict=True)]
    assert cmds.tobytes() == b"".join(expected)
    assert ends.tolist() == np.cumsum([len(e) for e in expected]).tolist()
    # the second and third ids only, as a slice of the starts (absolute offsets into id_data)
    exists = np.frombuffer(b"*3\r\n$6\r\nEXISTS\r\n", np.uint8)
    got = resp_multikey_command(exists, prefix, suffix, id_data, id_starts[1:])
    assert got.tobytes() == pack([b"EXISTS", *key[1:]])
    name = np.frombuffer(b"$6\r\nEXISTS\r\n", np.uint8)
    got = resp_grouped_commands(name, prefix, suffix, id_data, id_starts, np.array([0, 2, 3]))
    assert got.tobytes() == pack([b"EXISTS", *key[:2]]) + pack([b"EXISTS", key[2]])


def test_id_slots_match_redis_cluster_hashing():
    """The compiled CRC16 slots of ids against the pure-Python one (``cache.cluster.key_slot``)
    and against values Redis itself gives (CLUSTER KEYSLOT, from the cluster specification's
    example and redis-cli on 7.0)."""
    from cache.cluster import key_slot
    from cache.kernels import id_slots
    from cache.packed import concat_bytes

    assert key_slot(b"123456789") == 0x31C3  # the specification's CRC16 check value
    assert key_slot(b"foo") == 12182 and key_slot(b"bar") == 5061
    assert key_slot(b"vidrec:ns:v:1:u:{u42}") == key_slot(b"vidrec:ns:hist:{u42}") == key_slot(b"u42")
    assert key_slot(b"a{}b") != key_slot(b"b")  # an empty tag hashes the whole key
    ids = ["u1", "é" * 7, "x" * 120, "foo", "bar"]
    id_data, id_starts = concat_bytes([u.encode() for u in ids])
    assert id_slots(id_data, id_starts).tolist() == [key_slot(u.encode()) for u in ids]
