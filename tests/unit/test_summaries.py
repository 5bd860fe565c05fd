"""Video summaries: the K most representative sampled frames (medoids by embedding, in time
order) and their JPEG strip; on a clip the test joins from two different real clips, the summary
frames fall in both of its scenes."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.frames import SamplingConfig, summary_frames, summary_strip
from tests.conftest import shared_file


def test_medoids_cover_each_cluster_in_time_order():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=16) for _ in range(3))
    emb = np.stack([a + 0.05 * rng.normal(size=16) for _ in range(5)] + [b + 0.05 * rng.normal(size=16) for _ in range(3)]
                   + [c + 0.05 * rng.normal(size=16) for _ in range(4)])  # fmt: skip
    picks = summary_frames(emb, 3)
    assert picks.tolist() == sorted(picks.tolist()) and len(picks) == 3
    assert {0 if p < 5 else 1 if p < 8 else 2 for p in picks} == {0, 1, 2}
    assert summary_frames(emb[:2], 3).tolist() == [0, 1]  # fewer frames than k: all of them
    assert summary_frames(emb, 0).tolist() == [] and summary_frames(emb[:0], 2).tolist() == []
    np.testing.assert_array_equal(summary_frames(emb, 3), picks)  # deterministic


def test_a_strip_is_one_jpeg_of_the_frames_side_by_side():
    import cv2

    frames = np.zeros((3, 60, 80, 3), np.uint8)
    frames[1, :, :, 0] = 255
    strip = cv2.imdecode(np.frombuffer(summary_strip(frames, height=30), np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (30, 3 * 40, 3)
    assert strip[:, 40:80, 2].mean() > 200 and strip[:, :40].mean() < 20  # the red frame in the middle (BGR)


@pytest.mark.slow
def test_summary_frames_of_a_clip_with_two_scenes_are_spread_over_both(tmp_path):
    import cv2

    from pipelines.frame_features import sample_frames
    from recsys.encoders import get_image_encoder

    joined = tmp_path / "two-scenes.mp4"
    writer = cv2.VideoWriter(str(joined), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 180))
    scene_frames = {}
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        cap = cv2.VideoCapture(str(shared_file("videos", name)))
        n = 0
        while n < 120:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, (320, 180)))
            n += 1
        cap.release()
        scene_frames[name] = n
    writer.release()
    cut = scene_frames["bikes.mp4"]  # the first frame of the second scene
    sampled = sample_frames(joined, SamplingConfig(num_frames=10, seek="exact"), 0.5)
    emb = get_image_encoder("efficientnet-lite0").encode(sampled.frames)
    for k in (2, 3):
        picks = summary_frames(emb, k)
        at = sampled.indices[picks]
        assert (at < cut).any() and (at >= cut).any(), (k, at.tolist(), cut)
        assert at.tolist() == sorted(at.tolist())
    strip = cv2.imdecode(np.frombuffer(summary_strip(sampled.frames[summary_frames(emb, 3)]), np.uint8), 1)
    assert strip.shape[0] == 96 and strip.shape[1] == 3 * round(320 * 96 / 180)
