"""A synthetic data source in which text and pictures carry different, complementary signal.

Every video has a **topic** (what it is about: cooking, football, ...) and a **style** (how it
is made: its palette, a foreground shape and a kind of motion), drawn independently. Captions,
tags and comments use the topic's vocabulary; the frames show the style's look and nothing of
the topic. Users care about both: each has a taste over topics and a taste over styles and
watches, over several weeks, videos that fit both (a cooking fan who likes animations). So text
tells which topic a video belongs to, pictures which style, and only the two together tell
which videos a user will watch, as in real catalogues where the caption says what a clip is
about and the picture how it looks. Noise throughout: words borrowed from other topics, colour
jitter, some empty captions, videos without comments, off-taste views.

``plan_demo_source`` is pure (tables + render specs from a seed); ``write_demo_source`` renders
real video files with OpenCV and writes the tables in the data contract.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cooking", ("pasta", "recipe", "kitchen", "garlic", "oven", "sauce", "chef", "bake", "spicy", "dinner")),
    ("football", ("goal", "match", "striker", "league", "penalty", "stadium", "coach", "derby", "keeper", "tackle")),
    ("space", ("rocket", "orbit", "galaxy", "nasa", "launch", "planet", "astronaut", "telescope", "mars", "comet")),
    ("cats", ("kitten", "purr", "meow", "whiskers", "litter", "catnip", "paws", "tabby", "nap", "fluffy")),
    ("cars", ("engine", "drift", "turbo", "racing", "horsepower", "garage", "sedan", "torque", "v8", "pitstop")),
    ("music", ("guitar", "concert", "chorus", "drums", "album", "melody", "bass", "singer", "remix", "vinyl")),
    (
        "travel",
        ("beach", "passport", "hostel", "island", "backpack", "flight", "mountain", "hike", "sunset", "roadtrip"),
    ),
    ("gaming", ("speedrun", "boss", "level", "controller", "console", "quest", "pixel", "esports", "loot", "respawn")),
)
FILLER = ("the", "best", "amazing", "new", "my", "first", "ultimate", "quick", "top", "crazy", "today", "why")
SHAPES = ("circle", "square", "triangle", "stripes", "ring", "cross", "diamond", "bars")
MOTIONS = ("horizontal", "vertical", "diagonal", "orbit", "pulse", "bounce", "zigzag", "still_shake")
STYLES = ("studio", "handheld", "animation", "timelapse", "slideshow", "screencast", "drone", "closeup")
"""Style s looks like: hue s * 180 / num_styles, SHAPES[s], MOTIONS[s]."""


@dataclass(frozen=True)
class DemoConfig:
    num_videos: int = 160
    num_users: int = 300
    num_topics: int = 8
    num_styles: int = 4
    seed: int = 7
    days: int = 56
    start_epoch_s: int = 1_756_684_800  # 2025-09-01T00:00:00Z
    min_events_per_user: int = 15
    max_events_per_user: int = 50
    off_taste_rate: float = 0.08
    freshness_days: float = 30.0
    """Views of a video fall off with its age: weight exp(-age / freshness_days)."""
    frame_size_px: int = 96
    frames_per_video: int = 24
    frames_per_second: float = 12.0
    include_bad_rows: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.num_topics <= len(TOPICS):
            raise ValueError(f"num_topics must be in 1..{len(TOPICS)}, got {self.num_topics}")
        if not 1 <= self.num_styles <= len(STYLES):
            raise ValueError(f"num_styles must be in 1..{len(STYLES)}, got {self.num_styles}")
        if self.num_videos < self.num_topics or self.num_users < 1:
            raise ValueError("need at least one video per topic and at least one user")
        if not 0 < self.min_events_per_user <= self.max_events_per_user:
            raise ValueError("need 0 < min_events_per_user <= max_events_per_user")


@dataclass(frozen=True)
class VideoSpec:
    """How to render one clip: everything the picture depends on."""

    video_id: str
    topic: int  # not drawn: only the text shows it
    style: int
    hue: int  # OpenCV hue 0..179 of the background
    shape: str
    motion: str
    speed: float
    size_frac: float
    phase: float


@dataclass(frozen=True)
class DemoPlan:
    videos: pd.DataFrame
    comments: pd.DataFrame
    events: pd.DataFrame
    specs: list[VideoSpec]


def _words(rng: np.random.Generator, topic: int, n: int, noise: float, num_topics: int) -> list[str]:
    out = []
    for _ in range(n):
        t = int(rng.integers(num_topics)) if rng.random() < noise else topic
        out.append(str(rng.choice(TOPICS[t][1])))
    return out


def plan_demo_source(cfg: DemoConfig) -> DemoPlan:
    """Deterministic tables and render specs for ``cfg`` (same seed, same output)."""
    rng = np.random.default_rng(cfg.seed)
    topic_of, style_of, quality, release = _plan_videos(rng, cfg)
    specs, video_rows, comment_rows = [], [], []
    for i in range(cfg.num_videos):
        spec, row, comments = _plan_video(rng, cfg, i, int(topic_of[i]), int(style_of[i]), int(release[i]))
        specs.append(spec)
        video_rows.append(row)
        comment_rows.extend(comments)
    event_rows = [
        row for u in range(cfg.num_users) for row in _plan_user(rng, cfg, u, topic_of, style_of, quality, release)
    ]
    videos = pd.DataFrame(video_rows)
    comments = pd.DataFrame(comment_rows, columns=["comment_id", "video_id", "text", "likes", "created_at"])
    events = pd.DataFrame(event_rows)
    if cfg.include_bad_rows:
        videos, events = _add_bad_rows(videos, events, cfg)
    return DemoPlan(videos=videos, comments=comments, events=events, specs=specs)


def _plan_videos(rng: np.random.Generator, cfg: DemoConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(topic, style, quality, release time) of every video."""
    k, n_styles = cfg.num_topics, cfg.num_styles
    topic_of = np.arange(cfg.num_videos) % k
    rng.shuffle(topic_of)
    style_of = np.empty(cfg.num_videos, np.int64)
    for t in range(k):  # every style equally often within every topic: style tells nothing of topic
        members = rng.permutation(np.flatnonzero(topic_of == t))
        style_of[members] = (np.arange(len(members)) + rng.integers(n_styles)) % n_styles
    # Zipf-like quality inside each topic: a few hits, a long tail.
    quality = rng.pareto(1.2, cfg.num_videos) + 0.2
    # Uploads arrive all along (a quarter before the first day); nobody watches a video before its
    # upload, and views lean to fresh uploads, so the latest weeks bring videos with few or no
    # earlier views: there, only content can tell what a video is.
    span_s = cfg.days * 86400
    release = cfg.start_epoch_s + rng.integers(-span_s // 4, span_s - 2 * 86400, cfg.num_videos)
    return topic_of, style_of, quality, release


def _plan_video(
    rng: np.random.Generator, cfg: DemoConfig, i: int, t: int, st: int, release: int
) -> tuple[VideoSpec, dict[str, object], list[dict[str, object]]]:
    """One video's render spec, catalogue row and comments (its text drawn from its topic)."""
    k, vid = cfg.num_topics, f"v{i:05d}"
    spec = VideoSpec(
        video_id=vid,
        topic=t,
        style=st,
        hue=int((st * 180 // cfg.num_styles + rng.integers(-6, 7)) % 180),
        shape=SHAPES[st],
        motion=MOTIONS[st],
        speed=float(rng.uniform(0.6, 1.4)),
        size_frac=float(rng.uniform(0.18, 0.32)),
        phase=float(rng.uniform(0, 2 * np.pi)),
    )
    title = "" if rng.random() < 0.08 else " ".join([str(rng.choice(FILLER)), *_words(rng, t, 2, 0.15, k)])
    description = "" if rng.random() < 0.3 else " ".join(_words(rng, t, int(rng.integers(5, 11)), 0.3, k))
    row = {
        "video_id": vid,
        "title": title,
        "description": description,
        "tags": "|".join(_words(rng, t, 2, 0.2, k)),
        "category": TOPICS[t][0],
        "duration_s": cfg.frames_per_video / cfg.frames_per_second,
        "published_at": release,
        "media_path": f"media/{vid}.mp4",
    }
    comments = []
    for j in range(0 if rng.random() < 0.2 else int(rng.integers(1, 7))):
        text = "" if rng.random() < 0.03 else " ".join(_words(rng, t, int(rng.integers(3, 9)), 0.35, k))
        comments.append(
            {
                "comment_id": f"{vid}-c{j}",
                "video_id": vid,
                "text": text,
                "likes": int(rng.poisson(3)),
                "created_at": cfg.start_epoch_s + int(rng.integers(0, cfg.days * 86400)),
            }
        )
    return spec, row, comments


def _plan_user(
    rng: np.random.Generator,
    cfg: DemoConfig,
    u: int,
    topic_of: np.ndarray,
    style_of: np.ndarray,
    quality: np.ndarray,
    release: np.ndarray,
) -> list[dict[str, object]]:
    """One user's watches: a taste for topics and styles, videos drawn by fit x quality x
    freshness among those already uploaded and not yet seen (now and then off taste)."""
    pref_topic = rng.dirichlet(np.full(cfg.num_topics, 0.25))
    pref_style = rng.dirichlet(np.full(cfg.num_styles, 0.3))
    fit = pref_topic[topic_of] * pref_style[style_of]  # how well each video suits this user
    n = int(rng.integers(cfg.min_events_per_user, cfg.max_events_per_user + 1))
    times = np.sort(cfg.start_epoch_s + rng.integers(0, cfg.days * 86400, n))
    unseen = np.ones(cfg.num_videos, bool)
    rows = []
    for ts in times:
        age_days = (ts - release) / 86400.0
        open_ = unseen & (age_days >= 0)
        if not open_.any():
            continue
        fresh = np.exp(-np.clip(age_days, 0, None) / cfg.freshness_days)
        w = quality * fresh * open_ * (1.0 if rng.random() < cfg.off_taste_rate else fit)
        if w.sum() <= 0:
            w = quality * fresh * open_
        v = int(rng.choice(cfg.num_videos, p=w / w.sum()))
        unseen[v] = False
        affinity = 0.5 * pref_topic[topic_of[v]] + 0.5 * pref_style[style_of[v]]
        completion = float(np.clip(rng.beta(2 + 6 * affinity, 2), 0.02, 1.0))
        rows.append(
            {
                "user_id": f"u{u:05d}",
                "video_id": f"v{v:05d}",
                "ts": int(ts),
                "watch_seconds": round(completion * cfg.frames_per_video / cfg.frames_per_second, 2),
                "event": "view",
            }
        )
    return rows


def _add_bad_rows(videos: pd.DataFrame, events: pd.DataFrame, cfg: DemoConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows a real catalogue has: a damaged file, a missing file, a malformed event."""
    extra_videos = pd.DataFrame(
        [
            {"video_id": "v_corrupt", "title": "corrupt upload", "media_path": "media/v_corrupt.mp4", "category": ""},
            {"video_id": "v_missing", "title": "lost file", "media_path": "media/does_not_exist.mp4", "category": ""},
        ]
    )
    extra_events = pd.DataFrame(
        [
            {"user_id": "u00000", "video_id": "v_unknown", "ts": cfg.start_epoch_s + 100, "event": "view"},
            {"user_id": "bad user id!", "video_id": "v00000", "ts": cfg.start_epoch_s + 200, "event": "view"},
            {"user_id": "u00001", "video_id": "v00001", "ts": "not-a-time", "event": "view"},
        ]
    )
    return pd.concat([videos, extra_videos], ignore_index=True), pd.concat([events, extra_events], ignore_index=True)


def render_frames(spec: VideoSpec, cfg: DemoConfig) -> np.ndarray:
    """[frames, size, size, 3] uint8 BGR frames of one clip."""
    import cv2

    s = cfg.frame_size_px
    bg_hsv = np.uint8([[[spec.hue, 170, 200]]])
    bg = cv2.cvtColor(bg_hsv, cv2.COLOR_HSV2BGR)[0, 0].tolist()
    fg = cv2.cvtColor(np.uint8([[[(spec.hue + 90) % 180, 220, 240]]]), cv2.COLOR_HSV2BGR)[0, 0].tolist()
    r = max(3, int(spec.size_frac * s))
    noise_rng = np.random.default_rng(zlib.crc32(spec.video_id.encode()))
    frames = []
    for f in range(cfg.frames_per_video):
        a = spec.phase + spec.speed * 2 * np.pi * f / cfg.frames_per_video
        cx, cy, scale = _position(spec.motion, a, s)
        img = np.empty((s, s, 3), np.uint8)
        img[:] = bg
        rr = max(2, int(r * scale))
        _draw_shape(img, spec.shape, (cx, cy), rr, fg)
        noise = noise_rng.integers(-12, 13, img.shape, dtype=np.int16)
        frames.append(np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _position(motion: str, a: float, s: int) -> tuple[int, int, float]:
    c, amp = s / 2, s * 0.28
    x, y, scale = c, c, 1.0
    if motion == "horizontal":
        x = c + amp * np.sin(a)
    elif motion == "vertical":
        y = c + amp * np.sin(a)
    elif motion == "diagonal":
        x = y = c + amp * np.sin(a)
    elif motion == "orbit":
        x, y = c + amp * np.cos(a), c + amp * np.sin(a)
    elif motion == "pulse":
        scale = 0.6 + 0.5 * (1 + np.sin(2 * a)) / 2
    elif motion == "bounce":
        y = c + amp * (abs(np.sin(a)) * 2 - 1)
    elif motion == "zigzag":
        x, y = c + amp * np.sin(a), c + amp * np.sign(np.sin(3 * a)) * 0.5
    else:  # still_shake
        x, y = c + 2 * np.sin(7 * a), c + 2 * np.cos(5 * a)
    return int(x), int(y), float(scale)


def _draw_shape(img: np.ndarray, shape: str, centre: tuple[int, int], r: int, color: list[int]) -> None:
    import cv2

    cx, cy = centre
    if shape == "circle":
        cv2.circle(img, centre, r, color, -1)
    elif shape == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color)
    elif shape == "stripes":
        for off in range(-2 * r, 2 * r + 1, max(2, r // 2)):
            cv2.line(img, (cx + off - r, cy - r), (cx + off + r, cy + r), color, 2)
    elif shape == "ring":
        cv2.circle(img, centre, r, color, max(2, r // 3))
    elif shape == "cross":
        cv2.line(img, (cx - r, cy), (cx + r, cy), color, max(2, r // 3))
        cv2.line(img, (cx, cy - r), (cx, cy + r), color, max(2, r // 3))
    elif shape == "diamond":
        pts = np.array([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], np.int32)
        cv2.fillPoly(img, [pts], color)
    else:  # bars
        for i in range(-1, 2):
            cv2.rectangle(img, (cx + i * r - r // 4, cy - r), (cx + i * r + r // 4, cy + r), color, -1)


def write_video(path: Path, frames_bgr: np.ndarray, fps: float) -> None:
    """Write an MP4 (MPEG-4 part 2) with OpenCV; raises if the writer cannot open."""
    import cv2

    h, w = frames_bgr.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open a video writer for {path} (mp4v codec missing?)")
    try:
        for frame in frames_bgr:
            writer.write(frame)
    finally:
        writer.release()


def write_demo_source(cfg: DemoConfig, out_dir: Path) -> DemoPlan:
    """Render the clips and write videos.csv, comments.csv, events.csv under ``out_dir``.

    Rerunning with the same config rewrites the same files (a clip already rendered from the same
    spec is kept; ``media/render-manifest.json`` records the specs).
    """
    import json
    from dataclasses import asdict

    plan = plan_demo_source(cfg)
    media = out_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    # What each clip on disk was rendered from: a clip is kept only if its spec (and the frame
    # settings) are unchanged, so a new generator version or config re-renders what differs.
    manifest_path = media / "render-manifest.json"
    rendered = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    frame_settings = [cfg.frame_size_px, cfg.frames_per_video, cfg.frames_per_second]
    for spec in plan.specs:
        path = media / f"{spec.video_id}.mp4"
        key = json.dumps([asdict(spec), frame_settings], sort_keys=True)
        if rendered.get(spec.video_id) != key or not path.exists() or path.stat().st_size == 0:
            write_video(path, render_frames(spec, cfg), cfg.frames_per_second)
            rendered[spec.video_id] = key
    manifest_path.write_text(json.dumps(rendered, indent=0, sort_keys=True))
    if cfg.include_bad_rows:
        # Bytes that look like nothing OpenCV can decode: the corrupt upload.
        (media / "v_corrupt.mp4").write_bytes(np.random.default_rng(cfg.seed).bytes(4096))
    plan.videos.to_csv(out_dir / "videos.csv", index=False)
    plan.comments.to_csv(out_dir / "comments.csv", index=False)
    plan.events.to_csv(out_dir / "events.csv", index=False)
    log.info(
        "demo source: %d videos, %d comments, %d events -> %s",
        len(plan.videos),
        len(plan.comments),
        len(plan.events),
        out_dir,
    )
    return plan
