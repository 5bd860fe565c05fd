import numpy as np
import pytest

from pipelines.demo_data import DemoConfig, VideoSpec, render_frames, write_video
from pipelines.frame_features import VideoDecodeError, sample_frames
from recsys.frames import mean_pool, uniform_frame_indices
from tests.conftest import shared_file


def test_uniform_indices_are_slice_centres():
    # 10 frames, 2 samples: slices [0,5) and [5,10), centres 2.5 -> 2 and 7.5 -> 7
    assert uniform_frame_indices(10, 2).tolist() == [2, 7]
    assert uniform_frame_indices(3, 5).tolist() == [0, 1, 2]
    assert uniform_frame_indices(0, 4).tolist() == []
    with pytest.raises(ValueError, match="num_samples must be positive"):
        uniform_frame_indices(10, 0)


def test_mean_pool():
    # mean of [1, 2] and [3, 4] is [2, 3]
    assert mean_pool(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist() == [2.0, 3.0]
    with pytest.raises(ValueError):
        mean_pool(np.zeros((0, 3)))


def test_sample_frames_seeks_real_clip():
    path = shared_file("videos", "bikes.mp4")  # 640x272, 250 frames
    s = sample_frames(path, 4, 0.5)
    assert s.frames.shape == (4, 272, 640, 3)
    assert s.frame_count_meta == 250
    assert s.indices.tolist() == [31, 93, 156, 218]
    # Frames far apart in a moving clip differ.
    assert np.abs(s.frames[0].astype(int) - s.frames[3].astype(int)).mean() > 5


def test_sample_frames_matches_sequential_decode(tmp_path):
    """A seeked frame is the same picture as the one reached by decoding every frame."""
    import cv2

    cfg = DemoConfig(frames_per_video=20)
    frames = render_frames(VideoSpec("x", 0, 30, "circle", "horizontal", 1.0, 0.3, 0.0), cfg)
    path = tmp_path / "x.mp4"
    write_video(path, frames, 10.0)
    s = sample_frames(path, 2, 0.5)
    cap = cv2.VideoCapture(str(path))
    seq = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        seq.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    assert len(seq) == 20
    for frame, idx in zip(s.frames, s.indices, strict=True):
        assert np.abs(frame.astype(int) - seq[idx].astype(int)).mean() < 1.0


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "missing file"), (b"", "empty file"), (b"\x00garbage" * 100, "cannot open video")],
)
def test_unusable_files_raise_with_reason(tmp_path, content, reason):
    path = tmp_path / "v.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=reason):
        sample_frames(path, 4, 0.5)


def test_truncated_file_is_rejected(tmp_path):
    src = shared_file("videos", "bigbuckbunny.mp4")
    data = src.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 10])
    with pytest.raises(VideoDecodeError):
        sample_frames(path, 8, 0.5)
