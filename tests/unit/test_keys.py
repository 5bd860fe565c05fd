import struct

import pytest

from cache import keys


def test_key_layout_is_exact():
    assert keys.live_key("demo") == "vidrec:demo:live"
    # per-user and per-video keys carry the id as a Redis Cluster hash tag
    assert keys.user_key("demo", "20261128-ab", "u1") == "vidrec:demo:v:20261128-ab:u:{u1}"
    assert keys.user_key("demo", "7", "u1") == keys.user_prefix("demo", "7") + "u1" + keys.TAG_SUFFIX.decode()
    assert keys.similar_key("demo", "7", "v1") == keys.similar_prefix("demo", "7") + "v1}" == "vidrec:demo:v:7:sim:{v1}"
    assert keys.hist_key("demo", "u1") == "vidrec:demo:hist:{u1}"
    assert keys.fresh_user_key("demo", "7", "u1") == "vidrec:demo:v:7:fresh:u:{u1}"
    assert keys.popular_key("demo", "20261128-ab") == "vidrec:demo:v:20261128-ab:popular"
    assert keys.meta_key("demo", "7") == "vidrec:demo:v:7:meta"


def test_encoding_bytes_and_round_trip():
    blob = keys.encode_items(["v1", "v22"], [0.5, -1.0])
    # magic, count 2, two float32 scores, then ids joined by newline
    assert blob == b"VR1" + struct.pack("<H", 2) + struct.pack("<2f", 0.5, -1.0) + b"v1\nv22"
    assert keys.decode_items(blob) == [("v1", 0.5), ("v22", -1.0)]
    assert keys.decode_items(keys.encode_items([], [])) == []


def test_encoding_rejects_bad_input():
    with pytest.raises(ValueError, match="2 ids but 1 scores"):
        keys.encode_items(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="newline"):
        keys.encode_items(["a\nb"], [1.0])
    with pytest.raises(ValueError, match="not a vidrec list"):
        keys.decode_items(b"XXX\x00\x00")


def test_decoding_a_prefix():
    blob = keys.encode_items(["a", "bb", "c"], [3.0, 2.0, 1.0])
    assert keys.decode_items(blob, 2) == [("a", 3.0), ("bb", 2.0)]
    assert keys.decode_items(blob, 0) == []
    assert keys.decode_items(blob, 10) == keys.decode_items(blob)
    truncated = blob[: -len(b"bb\nc")] + b"bb"  # header says 3, two ids present
    assert keys.decode_items(truncated, 2) == [("a", 3.0), ("bb", 2.0)]
    with pytest.raises(ValueError, match="corrupt"):
        keys.decode_items(truncated, 3)
