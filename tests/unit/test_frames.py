import numpy as np
import pytest

from pipelines.demo_data import DemoConfig, VideoSpec, render_frames, write_video
from pipelines.frame_features import VideoDecodeError, embed_sampled, read_frames, sample_frames, snap_to_keyframes
from recsys.frames import (
    SamplingConfig,
    cap_evenly,
    colour_histogram,
    plan_frame_indices,
    pool_segments,
    pool_video,
    rate_frame_indices,
    segment_ids,
    select_scene_changes,
    uniform_frame_indices,
)
from tests.conftest import shared_file


def test_uniform_indices_are_slice_centres():
    # 10 frames, 2 samples: slices [0,5) and [5,10), centres 2.5 -> 2 and 7.5 -> 7
    assert uniform_frame_indices(10, 2).tolist() == [2, 7]
    assert uniform_frame_indices(3, 5).tolist() == [0, 1, 2]
    assert uniform_frame_indices(0, 4).tolist() == []
    with pytest.raises(ValueError, match="num_samples must be positive"):
        uniform_frame_indices(10, 0)


def test_rate_indices_and_caps():
    # 25 fps, 1 frame/s over 100 frames: t = 0.5, 1.5, 2.5, 3.5 s -> 12.5, 37.5, 62.5, 87.5
    assert rate_frame_indices(100, 25.0, 1.0).tolist() == [12, 37, 62, 87]
    # 0.4 s is shorter than the first sample time (0.5 s): the middle frame instead
    assert rate_frame_indices(10, 25.0, 1.0).tolist() == [5]
    assert cap_evenly(np.arange(10), 2).tolist() == [2, 7]
    fps_cfg = SamplingConfig(strategy="fps", frames_per_second=2.0, max_frames=3)
    # 2 frames/s at 10 fps over 60 frames would be 12 frames; capped at 3, spread evenly
    assert plan_frame_indices(fps_cfg, 60, 10.0).tolist() == [12, 32, 52]
    assert plan_frame_indices(SamplingConfig(num_frames=2), 10, 25.0).tolist() == [2, 7]


def test_sampling_config_validates_and_keys():
    with pytest.raises(ValueError, match="sampling strategy must be one of"):
        SamplingConfig(strategy="random")
    with pytest.raises(ValueError, match="pooling must be one of"):
        SamplingConfig(pooling="median")
    assert SamplingConfig().key() == SamplingConfig().key() != SamplingConfig(num_frames=5).key()


def test_scene_change_selection_hand_computed():
    a, b, c = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0.5, 0.5, 0])
    hists = np.stack([a, a, b, b, c])
    # jumps (total variation) into candidates 1..4: 0, 1.0, 0, 0.5
    assert select_scene_changes(hists, 0.3, 10).tolist() == [0, 2, 4]
    assert select_scene_changes(hists, 0.3, 2).tolist() == [0, 2]  # keeps the largest jump
    assert select_scene_changes(hists[:0], 0.3, 5).tolist() == []
    h = colour_histogram(np.zeros((8, 8, 3), np.uint8))
    assert h.sum() == pytest.approx(1.0) and h[0] == 1.0


def test_segments_and_pooling_hand_computed():
    # frames at 0, 5, 65 s (fps 1), 60 s segments -> segments 0, 0, 1
    assert segment_ids(np.array([0, 5, 65]), 1.0, 60.0).tolist() == [0, 0, 1]
    emb = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    ids, seg = pool_segments(emb, np.array([0, 0, 1]))
    assert ids.tolist() == [0, 1] and seg.tolist() == [[2.0, 0.0], [0.0, 4.0]]
    assert pool_video(seg, "mean").tolist() == [1.0, 2.0]
    assert pool_video(seg, "max").tolist() == [2.0, 4.0]
    # distinct: the odd one out among three segments weighs more than the mean would give it
    three = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    d = pool_video(three, "distinct")
    assert d[1] > three.mean(axis=0)[1] and abs(d.sum() - 1.0) < 1e-6
    v = embed_sampled(emb, np.array([0, 5, 65]), 1.0, SamplingConfig(segment_seconds=60.0))
    assert v.segments.tolist() == [0, 1] and v.embedding.tolist() == [1.0, 2.0] and v.frames == 3


def test_sample_frames_seeks_real_clip():
    path = shared_file("videos", "bikes.mp4")  # 640x272, 250 frames at 25 fps
    s = sample_frames(path, SamplingConfig(num_frames=4, max_side_px=320, seek="exact"), 0.5)
    assert s.frames.shape == (4, 136, 320, 3)  # downscaled to a 320 px long side
    assert s.meta.frame_count == 250 and s.meta.fps == 25.0
    assert s.indices.tolist() == [31, 93, 156, 218]
    assert np.abs(s.frames[0].astype(int) - s.frames[3].astype(int)).mean() > 5


def test_keyframe_seek_on_a_real_clip_gives_the_keyframes_pictures():
    """bikes.mp4 (H.264) has keyframes at frames 0, 30, 76, 137, 187, 242: the planned frames 31,
    93, 156, 218 move to the nearest within half the gap to their neighbours; each decoded picture
    is the one OpenCV decodes at that frame number."""
    import cv2

    path = shared_file("videos", "bikes.mp4")
    s = sample_frames(path, SamplingConfig(num_frames=4, max_side_px=320), 0.5)  # seek="keyframe", the default
    assert s.indices.tolist() == [30, 76, 137, 242] and s.frames.shape == (4, 136, 320, 3)
    cap = cv2.VideoCapture(str(path))
    exact, got = read_frames(cap, s.indices, 320)
    cap.release()
    assert got == s.indices.tolist()
    for a, b in zip(s.frames, exact, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0  # the same picture (scalers differ)


def test_snap_to_keyframes_rules():
    wanted = np.array([10, 30, 50, 70])
    # no keyframe but the first frame: nothing moves (frame 0 is never a target it was not asked for)
    assert snap_to_keyframes(wanted, np.array([0]))[0].tolist() == [10, 30, 50, 70]
    # within half the gap to the nearer neighbour (10) and half the distance from the start only
    targets, snapped = snap_to_keyframes(wanted, np.array([0, 24, 38, 61]))
    assert targets.tolist() == [10, 24, 50, 61] and snapped.tolist() == [False, True, False, True]
    # a keyframe serves the nearest sample; the other stays exact (no sample lost to a duplicate)
    targets, snapped = snap_to_keyframes(np.array([30, 50]), np.array([41]))
    assert targets.tolist() == [30, 41] and snapped.tolist() == [False, True]
    targets, _ = snap_to_keyframes(np.array([50]), np.array([0, 70, 100]))  # one sample: up to 25 away
    assert targets.tolist() == [70]
    assert snap_to_keyframes(np.array([40]), np.array([0, 70]))[0].tolist() == [40]


@pytest.mark.parametrize("clip", ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"])
def test_every_shared_clip_samples_under_every_strategy(clip):
    path = shared_file("videos", clip)
    for strategy in ("uniform", "fps", "scene"):
        s = sample_frames(path, SamplingConfig(strategy=strategy, frames_per_second=2.0), 0.5)
        assert 1 <= len(s.frames) <= 32 and s.frames.dtype == np.uint8
        assert (np.diff(s.indices) > 0).all()


def _write_clip(tmp_path, n=40, fps=10.0, name="x.mp4"):
    cfg = DemoConfig(frames_per_video=n)
    frames = render_frames(
        VideoSpec(
            "x", topic=0, style=0, hue=30, shape="circle", motion="horizontal", speed=1.0, size_frac=0.3, phase=0.0
        ),
        cfg,
    )
    path = tmp_path / name
    write_video(path, frames, fps)
    return path


def test_read_frames_seek_and_grab_give_the_sequential_pictures(tmp_path):
    """Frames reached by seeking or grabbing equal those from decoding every frame."""
    import cv2

    path = _write_clip(tmp_path, n=120)
    cap = cv2.VideoCapture(str(path))
    seq = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        seq.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    wanted = np.array([3, 5, 100, 110])  # grab over short gaps, seek over the long one
    cap = cv2.VideoCapture(str(path))
    frames, got = read_frames(cap, wanted, 10_000)
    cap.release()
    assert got == wanted.tolist()
    for frame, idx in zip(frames, got, strict=True):
        assert np.abs(frame.astype(int) - seq[idx].astype(int)).mean() < 1.0


def test_scene_strategy_finds_cuts(tmp_path):
    """A clip of three solid-colour shots: scene sampling keeps one frame per shot."""
    frames = np.zeros((60, 64, 64, 3), np.uint8)
    frames[:20] = (255, 0, 0)
    frames[20:40] = (0, 255, 0)
    frames[40:] = (0, 0, 255)
    path = tmp_path / "cuts.mp4"
    write_video(path, frames, 10.0)
    s = sample_frames(path, SamplingConfig(strategy="scene", scene_probe_fps=5.0), 0.5)
    assert len(s.frames) == 3 and s.decoded == s.wanted == 30  # 6 s at 5 candidates/s
    assert [int(i) // 20 for i in s.indices] == [0, 1, 2]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "missing file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is a text file, not a video\n" * 50), "cannot open video"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(50_000)), "cannot open video"),
    ],
    ids=["missing", "zero-bytes", "text-named-mp4", "random-bytes"],
)
def test_unusable_files_raise_with_reason(tmp_path, make, reason):
    path = tmp_path / "v.mp4"
    make(path)
    with pytest.raises(VideoDecodeError, match=reason):
        sample_frames(path, SamplingConfig(), 0.5)


def test_truncated_mp4_is_rejected(tmp_path):
    data = shared_file("videos", "bigbuckbunny.mp4").read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 10])  # moov atom at the end: nothing to index
    with pytest.raises(VideoDecodeError):
        sample_frames(path, SamplingConfig(num_frames=8), 0.5)


def test_truncated_avi_decodes_fewer_frames_than_it_claims(tmp_path):
    """An MJPG AVI cut in half still claims all its frames: sampled frames past the cut fail."""
    import cv2

    frames = render_frames(
        VideoSpec(
            "x", topic=0, style=0, hue=30, shape="circle", motion="horizontal", speed=1.0, size_frac=0.3, phase=0.0
        ),
        DemoConfig(frames_per_video=80),
    )
    path = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 96))
    for f in frames:
        writer.write(f)
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    try:
        s = sample_frames(cut, SamplingConfig(num_frames=8), 0.0)
        assert s.decoded < s.wanted  # flagged: fewer decoded than planned
    except VideoDecodeError:
        pass  # or refused outright: either way not taken as a whole video
    with pytest.raises(VideoDecodeError, match="truncated or damaged|cannot open|bad metadata|zero frames"):
        sample_frames(cut, SamplingConfig(num_frames=8), 0.9)


def test_wrong_extension_still_decodes(tmp_path):
    """A real MP4 named .avi is a video: the container is probed, not the extension trusted."""
    path = _write_clip(tmp_path, name="clip.avi")
    assert len(sample_frames(path, SamplingConfig(num_frames=3), 0.5).frames) == 3


def test_huge_resolution_is_refused(tmp_path):
    import cv2

    path = tmp_path / "huge.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1.0, (4200, 2200))
    writer.write(np.zeros((2200, 4200, 3), np.uint8))
    writer.release()
    with pytest.raises(VideoDecodeError, match="resolution 4200x2200 unsupported"):
        sample_frames(path, SamplingConfig(), 0.5)
