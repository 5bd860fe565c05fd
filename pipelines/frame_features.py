"""frame_features: sample frames without decoding whole files, embed them, pool per segment and video.

Edge (I/O): ``probe`` and ``read_frames`` open a file with OpenCV and decode only the frames
asked for (seeking over long gaps, grabbing through short ones); ``sample_frames`` applies a
sampling strategy on top. Core (pure): ``embed_sampled`` turns decoded frames into segment
embeddings and one pooled video embedding.

A video whose file is missing, empty, not a video, with absurd metadata, too large, or that
decodes too few of its sampled frames is quarantined with the reason; the run goes on.

Incremental: each video's result is cached under (file SHA-256, encoder name and weights
hash, sampling config), so a nightly run decodes and embeds only new or changed files, and a
rerun with nothing new does neither and rewrites identical outputs. File hashes are memoised
by (path, size, mtime) so unchanged files are not re-read either.

Sharded: ``run_shard`` handles the videos whose id hashes to one shard (an Airflow mapped task
each); ``reduce_shards`` joins the shard outputs into the step's partition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import ingest, storage
from pipelines.config import PipelineConfig, shard_of
from pipelines.storage import atomic_write, write_json, write_parquet
from recsys.encoders import ImageEncoder, get_image_encoder
from recsys.frames import (
    SamplingConfig,
    colour_histogram,
    plan_frame_indices,
    pool_segments,
    pool_video,
    segment_ids,
    select_scene_changes,
    summary_frames,
    summary_strip,
)

log = logging.getLogger(__name__)

MAX_PIXELS = 4096 * 2160  # beyond 4K: refuse rather than risk memory on a bogus header
MAX_FPS = 1000.0
MAX_DURATION_S = 24 * 3600.0
LOOKAHEAD_VIDEOS = 8  # videos decoded ahead of the encoder (bounds memory)
ENCODE_BATCH_FRAMES = 64  # frames of several videos are encoded together
SEEK_GAP_FRAMES = 48  # past this gap, seeking (to a keyframe, then decoding forward) beats grabbing


class VideoDecodeError(Exception):
    """A video that cannot be used; ``str(exc)`` is the quarantine reason."""


@dataclass(frozen=True)
class VideoMeta:
    frame_count: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class SampledFrames:
    frames: np.ndarray  # [n, h, w, 3] uint8 RGB (downscaled to max_side_px)
    indices: np.ndarray  # [n] frame index of each decoded frame
    wanted: int  # how many frames the plan asked to decode
    decoded: int  # how many of those decoded (before scene selection keeps some)
    meta: VideoMeta


def _downscale(frame_bgr: np.ndarray, max_side_px: int) -> np.ndarray:
    import cv2

    h, w = frame_bgr.shape[:2]
    scale = max_side_px / max(h, w)
    if scale < 1.0:
        frame_bgr = cv2.resize(
            frame_bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


def probe(cap: object, path: Path) -> VideoMeta:
    """Container metadata, validated; raises VideoDecodeError with the reason."""
    import cv2

    if not cap.isOpened():  # type: ignore[attr-defined]
        raise VideoDecodeError("cannot open video")
    get = cap.get  # type: ignore[attr-defined]
    meta = VideoMeta(
        int(get(cv2.CAP_PROP_FRAME_COUNT)),
        float(get(cv2.CAP_PROP_FPS)),
        int(get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    if meta.frame_count <= 0 or not np.isfinite(meta.fps) or not 0 < meta.fps <= MAX_FPS:
        raise VideoDecodeError(f"bad metadata (frames={meta.frame_count}, fps={meta.fps:g})")
    if meta.frame_count / meta.fps > MAX_DURATION_S:
        raise VideoDecodeError(f"bad metadata (claims {meta.frame_count / meta.fps:.0f} s)")
    if meta.width <= 0 or meta.height <= 0 or meta.width * meta.height > MAX_PIXELS:
        raise VideoDecodeError(f"resolution {meta.width}x{meta.height} unsupported")
    return meta


def read_frames(cap: object, indices: np.ndarray, max_side_px: int) -> tuple[list[np.ndarray], list[int]]:
    """Decode the frames at ``indices`` (sorted), and only those and what seeking needs.

    Over a gap of more than SEEK_GAP_FRAMES the reader seeks (the decoder restarts at the
    keyframe before the target); over a shorter gap it grabs (demux + decode, no colour
    conversion or copy) frame by frame. Returns the decoded frames and their indices; a frame
    that fails to decode is skipped, so the caller can compare what it got with what it asked.
    """
    import cv2

    frames, got = [], []
    pos = 0  # index of the frame the next read() returns
    for idx in np.asarray(indices, np.int64):
        idx = int(idx)
        if idx - pos > SEEK_GAP_FRAMES or idx < pos:
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)  # type: ignore[attr-defined]
            pos = idx
        ok = True
        while pos < idx and ok:
            ok = cap.grab()  # type: ignore[attr-defined]
            pos += 1
        if not ok:
            continue
        ok, frame = cap.read()  # type: ignore[attr-defined]
        pos += 1
        if ok and frame is not None:
            frames.append(_downscale(frame, max_side_px))
            got.append(idx)
    return frames, got


def snap_to_keyframes(wanted: np.ndarray, keyframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(targets, snapped): each wanted frame index moved to the nearest keyframe when one lies
    within half the gap to its nearer neighbouring wanted frame (no sample crosses into another's
    share of the clip) and half its distance from the start, else kept. A keyframe serves one sample, the nearest (the earlier on a tie):
    no sample is lost to a duplicate. The clip's first frame (often black or a title card, which
    the plans avoid) is never snapped to.

    >>> snap_to_keyframes(np.array([3, 9, 15, 21]), np.array([0, 12]))
    (array([ 3, 12, 15, 21]), array([False,  True, False, False]))
    """
    wanted = np.asarray(wanted, np.int64)
    keyframes = np.asarray(keyframes, np.int64)
    keyframes = keyframes[keyframes > 0]
    if not len(wanted) or not len(keyframes):
        return wanted, np.zeros(len(wanted), bool)
    gaps = np.diff(wanted).astype(np.float64)
    half = np.minimum(np.append(gaps, np.inf), np.insert(gaps, 0, np.inf)) / 2  # to the nearer neighbour
    half = np.minimum(half, wanted / 2)  # and not much nearer the clip's start than planned
    pos = np.clip(np.searchsorted(keyframes, wanted), 1, len(keyframes)) - 1
    left, right = keyframes[pos], keyframes[np.minimum(pos + 1, len(keyframes) - 1)]
    nearest = np.where(np.abs(right - wanted) < np.abs(wanted - left), right, left)
    dist = np.abs(nearest - wanted)
    snapped = dist <= half
    for kf in np.unique(nearest[snapped]):
        claims = np.flatnonzero(snapped & (nearest == kf))
        snapped[claims[claims != claims[np.argmin(dist[claims])]]] = False
    targets = np.where(snapped, nearest, wanted)
    order = np.argsort(targets, kind="stable")
    return targets[order], snapped[order]


def read_frames_keyframes(
    path: Path, indices: np.ndarray, fps: float, max_side_px: int
) -> tuple[list[np.ndarray], list[int]]:
    """Decode the frames at ``indices`` with PyAV (FFmpeg), each snapped to the nearest keyframe
    where one is close (``snap_to_keyframes``): a snapped frame costs one seek and one decoded
    frame, where an exact one costs the decoding of every frame from the keyframe before it. The
    keyframes are found from the packets (demuxing, no decoding). Returns the frames and the
    indices they were decoded at (which may differ from those asked)."""
    import av

    frames: list[np.ndarray] = []
    got: list[int] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            tb, start = float(stream.time_base), stream.start_time or 0

            def index_of(pts: int) -> int:  # the frame number OpenCV would give it
                return round((pts - start) * tb * fps)

            keyframes = np.array(
                sorted({index_of(p.pts) for p in container.demux(stream) if p.is_keyframe and p.pts is not None}),
                dtype=np.int64,
            )
            targets, _ = snap_to_keyframes(np.asarray(indices, np.int64), keyframes)
            scale = min(1.0, max_side_px / max(stream.width, stream.height, 1))
            size = {"width": max(1, round(stream.width * scale)), "height": max(1, round(stream.height * scale))}
            decoding, pos = None, -1  # the decoder after the last seek, and its last frame number
            for t in targets.tolist():
                # Seek when decoding on from the keyframe at or before t is shorter than from here.
                before = keyframes[np.searchsorted(keyframes, t, side="right") - 1] if len(keyframes) else 0
                if decoding is None or t <= pos or t - before < t - pos - 1:
                    container.seek(start + round(t / fps / tb), stream=stream, backward=True)  # keyframe <= t
                    decoding, pos = container.decode(stream), -1
                found = None
                for frame in decoding:
                    pos = index_of(frame.pts) if frame.pts is not None else pos + 1
                    if pos >= t:
                        found = frame
                        break
                if found is None:  # the stream ended before it
                    decoding = None
                    continue
                frames.append(found.to_ndarray(format="rgb24", interpolation="AREA", **size))
                got.append(pos)
    except (av.error.FFmpegError, IndexError) as exc:
        if not frames:
            raise VideoDecodeError(f"cannot decode video ({type(exc).__name__})") from exc
    return frames, got


def sample_frames(path: Path, sampling: SamplingConfig, min_decoded_fraction: float) -> SampledFrames:
    """Open, probe, decode the planned frames; raise VideoDecodeError with a quarantine reason."""
    import cv2

    if not path.is_file():
        raise VideoDecodeError("missing file")
    if path.stat().st_size == 0:
        raise VideoDecodeError("empty file")
    cap = cv2.VideoCapture(str(path))
    try:
        meta = probe(cap, path)
        wanted = plan_frame_indices(sampling, meta.frame_count, meta.fps)
        if sampling.seek == "exact":
            frames, got = read_frames(cap, wanted, sampling.max_side_px)
    finally:
        cap.release()
    if sampling.seek == "keyframe":
        frames, got = read_frames_keyframes(path, wanted, meta.fps, sampling.max_side_px)
    if not frames:
        raise VideoDecodeError("zero frames decoded")
    if len(frames) < min_decoded_fraction * len(wanted):
        raise VideoDecodeError(f"decoded {len(frames)} of {len(wanted)} sampled frames (truncated or damaged)")
    stack, idx = np.stack(frames), np.asarray(got, np.int64)
    if sampling.strategy == "scene":
        keep = select_scene_changes(
            np.stack([colour_histogram(f) for f in stack]), sampling.scene_threshold, sampling.max_frames
        )
        stack, idx = stack[keep], idx[keep]
    return SampledFrames(stack, idx, len(wanted), len(frames), meta)


@dataclass(frozen=True)
class VideoEmbedding:
    embedding: np.ndarray  # [dim] pooled over segments
    segments: np.ndarray  # [n_segments] segment numbers
    segment_embeddings: np.ndarray  # [n_segments, dim]
    frames: int
    summary_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the summary frames' times, s


def embed_sampled(
    frame_embeddings: np.ndarray, frame_indices: np.ndarray, fps: float, sampling: SamplingConfig
) -> VideoEmbedding:
    """Pure core: [n_frames, dim] embeddings of one video's frames -> segments and video vector."""
    seg_ids, seg_emb = pool_segments(frame_embeddings, segment_ids(frame_indices, fps, sampling.segment_seconds))
    return VideoEmbedding(pool_video(seg_emb, sampling.pooling), seg_ids, seg_emb, len(frame_embeddings))


def _save_result(path: Path, r: VideoEmbedding) -> None:
    storage.save_npz(
        path,
        embedding=r.embedding,
        segments=r.segments,
        segment_embeddings=r.segment_embeddings,
        frames=r.frames,
        summary_s=r.summary_s,
    )


def _load_result(path: Path) -> VideoEmbedding:
    z = storage.load_npz(path)
    summary = z.get("summary_s", np.zeros(0))
    return VideoEmbedding(z["embedding"], z["segments"], z["segment_embeddings"], int(z["frames"]), summary)


def summaries_dir(cfg: PipelineConfig) -> Path:
    """``<workdir>/summaries/``: each video's summary strip as ``<content sha256>.jpg``."""
    return cfg.workdir / "summaries"


def _cache_dir(cfg: PipelineConfig, encoder: ImageEncoder) -> Path:
    name = f"{encoder.name.replace(':', '_')}-{encoder.version}-{cfg.sampling.key()}-summary{cfg.summary_frames}"
    return cfg.workdir / "cache" / "frames" / name


def _file_key(path: Path, memo: dict[str, list], fresh: dict[str, list]) -> str:
    """SHA-256 of the file's content, memoised by (path, size, mtime_ns)."""
    st = path.stat()
    seen = memo.get(str(path))
    if seen and seen[0] == st.st_size and seen[1] == st.st_mtime_ns:
        fresh[str(path)] = seen
        return str(seen[2])
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    fresh[str(path)] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
    return h.hexdigest()


def _read_ahead(pool: ThreadPoolExecutor, fn, items: list[tuple], depth: int):  # type: ignore[no-untyped-def]
    """Yield (item, fn(*item)) in order, with at most ``depth`` calls running ahead (bounded memory)."""
    queue: deque = deque()
    for item in items:
        queue.append((item, pool.submit(fn, *item)))
        if len(queue) > depth:
            done, future = queue.popleft()
            yield done, future.result()
    while queue:
        done, future = queue.popleft()
        yield done, future.result()


def _progress(iterable, total: int, desc: str):  # type: ignore[no-untyped-def]
    """A progress bar on an interactive terminal; plain iteration (and log lines) elsewhere."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="video")


def _shard_dir(cfg: PipelineConfig, run_date: str) -> Path:
    return cfg.partition(run_date, "frame_features") / "shards"


class ShardRun:
    """One shard's embedding run and everything it accumulates: feature rows, segment rows,
    quarantined videos, counters, the videos decoded and waiting to be encoded as one batch, and
    the file-hash memo (read from the last run, written fresh)."""

    def __init__(self, cfg: PipelineConfig, shard: int, num_shards: int) -> None:
        self.cfg = cfg
        self.name = f"shard-{shard:05d}-of-{num_shards:05d}"
        self.encoder = get_image_encoder(cfg.image_encoder, cfg.torch_threads, cfg.image_runtime, cfg.image_weights)
        self.cache = _cache_dir(cfg, self.encoder)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.memo_path = cfg.workdir / "cache" / "filehash" / f"{self.name}.json"
        self.memo = json.loads(self.memo_path.read_text()) if self.memo_path.exists() else {}
        self.fresh_memo: dict[str, list] = {}  # type: ignore[type-arg]
        self.rows: list[dict[str, object]] = []
        self.segments: list[dict[str, object]] = []
        self.quarantine: list[dict[str, object]] = []
        self.stats: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.pending: list[tuple[str, str, SampledFrames]] = []

    def add(self, vid: str, key: str, result: VideoEmbedding) -> None:
        self.rows.append(
            {
                "video_id": vid,
                "content_sha256": key,
                "embedding": result.embedding.tolist(),
                "num_segments": len(result.segments),
                "frames": result.frames,
                "summary_s": [round(float(t), 3) for t in result.summary_s],
            }
        )
        seg_s = self.cfg.sampling.segment_seconds
        for seg, emb in zip(result.segments, result.segment_embeddings, strict=True):
            start = float(seg * seg_s)
            self.segments.append(
                {
                    "video_id": vid,
                    "segment": int(seg),
                    "start_s": start,
                    "end_s": start + seg_s,
                    "embedding": emb.tolist(),
                }
            )

    def prepare(self, vid: str, media: str) -> tuple[str, object]:
        """Hash, then load from cache or decode (I/O; runs ahead in a thread: cv2 releases the GIL)."""
        path = Path(media)
        try:
            key = _file_key(path, self.memo, self.fresh_memo) if path.is_file() else ""
            if key and (self.cache / f"{key}.npz").exists():
                return key, _load_result(self.cache / f"{key}.npz")
            t = time.perf_counter()
            sampled = sample_frames(path, self.cfg.sampling, self.cfg.min_decoded_fraction)
            self.seconds["decode"] += time.perf_counter() - t
            return key, sampled
        except VideoDecodeError as exc:
            return "", exc

    def take(self, vid: str, media: str, key: str, got: object) -> None:
        """One prepared video: quarantined, already embedded (cache), or decoded and queued."""
        if isinstance(got, VideoDecodeError):
            self.quarantine.append({"video_id": vid, "media_file": media, "reason": str(got)})
            self.stats[f"quarantined[{got}]"] += 1
            log.warning("quarantined video %s (%s): %s", vid, media, got)
            return
        if isinstance(got, VideoEmbedding):
            self.add(vid, key, got)
            self.stats["skipped_unchanged"] += 1
            return
        assert isinstance(got, SampledFrames)
        self.stats["frames_decoded"] += got.decoded
        if got.decoded < got.wanted:
            self.stats["flagged_partial_decode"] += 1
            log.warning("video %s decoded %d of %d sampled frames", vid, got.decoded, got.wanted)
        self.pending.append((vid, key, got))
        if sum(len(p[2].frames) for p in self.pending) >= ENCODE_BATCH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Encode the pending videos' frames in one batch (the encoder is fastest on full batches)."""
        if not self.pending:
            return
        t = time.perf_counter()
        all_emb = self.encoder.encode([f for p in self.pending for f in p[2].frames])  # sizes may differ
        self.seconds["encode"] += time.perf_counter() - t
        start = 0
        for vid, key, sampled in self.pending:
            n = len(sampled.frames)
            emb = all_emb[start : start + n]
            result = embed_sampled(emb, sampled.indices, sampled.meta.fps, self.cfg.sampling)
            start += n
            if self.cfg.summary_frames and key:
                picks = summary_frames(emb, self.cfg.summary_frames)
                strip = summary_strip(sampled.frames[picks])
                storage.write_bytes(summaries_dir(self.cfg) / f"{key}.jpg", strip)
                result = replace(result, summary_s=sampled.indices[picks] / sampled.meta.fps)
            atomic_write(self.cache / f"{key}.npz", lambda p, r=result: _save_result(p, r))
            self.add(vid, key, result)
            self.stats["embedded"] += 1
        self.pending.clear()

    def write(self, out: Path) -> None:
        """The shard's three tables (rows by video id) and the fresh file-hash memo."""
        self.rows.sort(key=lambda r: str(r["video_id"]))
        atomic_write(self.memo_path, lambda p: p.write_text(json.dumps(self.fresh_memo)))
        tables = {
            "features": (
                self.rows,
                ["video_id", "content_sha256", "embedding", "num_segments", "frames", "summary_s"],
            ),
            "segments": (self.segments, ["video_id", "segment", "start_s", "end_s", "embedding"]),
            "quarantine": (self.quarantine, ["video_id", "media_file", "reason"]),
        }
        for table, (rows, columns) in tables.items():
            write_parquet(out / f"{self.name}.{table}.parquet", pd.DataFrame(rows, columns=columns))

    def summary(self, videos_seen: int, seconds: float) -> dict[str, object]:
        return {
            "videos_seen": videos_seen,
            "embedded": self.stats["embedded"],
            "skipped_unchanged": self.stats["skipped_unchanged"],
            "quarantined": len(self.quarantine),
            "frames_decoded": self.stats["frames_decoded"],
            "flagged_partial_decode": self.stats["flagged_partial_decode"],
            **{k: v for k, v in self.stats.items() if k.startswith("quarantined[")},
            "seconds_decode": round(self.seconds["decode"], 2),
            "seconds_encode": round(self.seconds["encode"], 2),
            "seconds": round(seconds, 2),
        }


def run_shard(cfg: PipelineConfig, run_date: str, shard: int, num_shards: int) -> dict[str, object]:
    """Embed the videos of one shard; writes shards/shard-KKKKK-of-NNNNN.{parquet,json}."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    t0 = time.perf_counter()
    videos = ingest.load(cfg, run_date).videos
    videos = videos[(videos["media_file"] != "") & (videos["video_id"].map(lambda v: shard_of(v, num_shards)) == shard)]
    run = ShardRun(cfg, shard, num_shards)
    # Decoding of the next videos overlaps encoding of the current batch.
    with ThreadPoolExecutor(max_workers=1) as pool:
        items = list(zip(videos["video_id"], videos["media_file"], strict=True))
        jobs = ((vid, media, got) for (vid, media), got in _read_ahead(pool, run.prepare, items, LOOKAHEAD_VIDEOS))
        for vid, media, (key, got) in _progress(jobs, len(videos), f"frames {shard}"):
            run.take(vid, media, key, got)
    run.flush()
    out = _shard_dir(cfg, run_date)
    run.write(out)
    summary = run.summary(len(videos), time.perf_counter() - t0)
    write_json(out / f"{run.name}.json", summary)
    log.info("frame_features %s shard %d/%d: %s", run_date, shard, num_shards, json.dumps(summary))
    return summary


def reduce_shards(cfg: PipelineConfig, run_date: str, num_shards: int) -> dict[str, object]:
    """Join the shards' outputs into frame_features.parquet, segments.parquet, quarantine.parquet."""
    shard_dir = _shard_dir(cfg, run_date)
    names = [f"shard-{k:05d}-of-{num_shards:05d}" for k in range(num_shards)]
    missing = [n for n in names if not (shard_dir / f"{n}.json").exists()]
    if missing:
        raise FileNotFoundError(f"frame_features shards not finished for {run_date}: {missing}")
    out = cfg.partition(run_date, "frame_features")
    for part, sort in (("features", ["video_id"]), ("segments", ["video_id", "segment"]), ("quarantine", ["video_id"])):
        df = pd.concat([storage.read_parquet(shard_dir / f"{n}.{part}.parquet") for n in names], ignore_index=True)
        target = "frame_features" if part == "features" else part
        write_parquet(out / f"{target}.parquet", df.sort_values(sort, kind="stable").reset_index(drop=True))
    summary: Counter[str] = Counter()
    for n in names:
        summary.update(json.loads((shard_dir / f"{n}.json").read_text()))
    result = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in sorted(summary.items())}
    result["shards"] = num_shards
    write_json(out / "summary.json", result)
    log.info("frame_features %s: %s", run_date, json.dumps(result))
    return result


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    """All shards in this process, then the reduce (what the CLI and `vidrec run` do)."""
    for shard in range(cfg.frame_shards):
        run_shard(cfg, run_date, shard, cfg.frame_shards)
    return reduce_shards(cfg, run_date, cfg.frame_shards)


def load(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    path = cfg.partition(run_date, "frame_features") / "frame_features.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no frame features for {run_date} at {path}; run the frame_features step first")
    return storage.read_parquet(path)


def load_quarantine(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    """Videos whose media file could not be used, with the reason (columns video_id, media_file, reason)."""
    path = cfg.partition(run_date, "frame_features") / "quarantine.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no frame features for {run_date} at {path}; run the frame_features step first")
    return storage.read_parquet(path)
