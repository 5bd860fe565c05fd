"""The packaged pretrained encoders, loaded offline from their pip packages."""

import numpy as np
import pytest

from recsys.encoders import get_image_encoder, get_text_encoder
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def image_encoder():
    return get_image_encoder("efficientnet-lite0", 2)


@pytest.fixture(scope="module")
def text_encoder():
    return get_text_encoder("all-minilm-l6-v2", 2)


def test_image_encoder_shape_and_determinism(image_encoder):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    a = image_encoder.encode(frames)
    b = image_encoder.encode(frames)
    assert a.shape == (3, 1280) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()
    assert image_encoder.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 1280)


def test_image_encoder_is_pretrained(image_encoder):
    """Real clips: two frames of the same shot are closer than frames of different clips."""
    from pipelines.frame_features import sample_frames

    bunny = sample_frames(shared_file("videos", "bigbuckbunny.mp4"), 2, 0.5).frames
    car = sample_frames(shared_file("videos", "carphone_pristine.mp4"), 2, 0.5).frames
    e = image_encoder.encode(np.concatenate([image_encoder_resize(bunny), image_encoder_resize(car)]))
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    same = e[2] @ e[3]
    cross = e[0] @ e[2]
    assert same > cross


def image_encoder_resize(frames):
    import cv2

    return np.stack([cv2.resize(f, (224, 224)) for f in frames])


def test_image_encoder_rejects_bad_shape(image_encoder):
    with pytest.raises(ValueError, match=r"\[n, h, w, 3\]"):
        image_encoder.encode(np.zeros((2, 8, 8), np.uint8))


def test_text_encoder_semantics_and_odd_input(text_encoder):
    texts = [
        "pasta recipe with garlic",
        "cooking spaghetti in the kitchen",
        "rocket launch to orbit",
        "",
        "🎉🎉🎉",
        "中文字幕 mixed 文字",
    ]
    e = text_encoder.encode(texts)
    assert e.shape == (6, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1
    np.testing.assert_array_equal(e, text_encoder.encode(texts))


def test_unknown_encoder_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown image encoder 'nope'"):
        get_image_encoder("nope")
    with pytest.raises(ValueError, match="unknown text encoder 'nope'"):
        get_text_encoder("nope")
