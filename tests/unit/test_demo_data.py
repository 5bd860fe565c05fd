import numpy as np

from pipelines.demo_data import DemoConfig, plan_demo_source, render_frames


def test_plan_is_deterministic_by_seed():
    a, b = (
        plan_demo_source(DemoConfig(num_videos=24, num_users=10, seed=1)),
        plan_demo_source(DemoConfig(num_videos=24, num_users=10, seed=1)),
    )
    assert a.events.equals(b.events) and a.videos.equals(b.videos) and a.comments.equals(b.comments)
    c = plan_demo_source(DemoConfig(num_videos=24, num_users=10, seed=2))
    assert not a.events.equals(c.events)
    np.testing.assert_array_equal(render_frames(a.specs[0], DemoConfig()), render_frames(b.specs[0], DemoConfig()))


def test_users_watch_their_topics_and_styles():
    plan = plan_demo_source(DemoConfig(num_videos=80, num_users=60, seed=5, include_bad_rows=False))
    spec = {s.video_id: s for s in plan.specs}
    ev = plan.events.assign(
        topic=plan.events["video_id"].map(lambda v: spec[v].topic),
        look=plan.events["video_id"].map(lambda v: spec[v].style),
    )

    def top_share(column: str) -> float:
        return float(ev.groupby("user_id")[column].agg(lambda s: s.value_counts(normalize=True).iloc[0]).mean())

    # Share of each user's views in their most-watched topic (style): far above uniform (1/8, 1/4),
    # though capped: a topic has only 10 videos, a user watches up to 50, and only what is uploaded.
    assert top_share("topic") > 0.2 and top_share("look") > 0.4
    assert (plan.events.groupby("user_id")["video_id"].nunique() == plan.events.groupby("user_id").size()).all()


def test_topic_and_style_are_independent_and_frames_show_only_the_style():
    plan = plan_demo_source(DemoConfig(num_videos=64, num_users=2, seed=5))
    pairs = {(s.topic, s.style) for s in plan.specs}
    assert len(pairs) == 8 * 4  # every topic appears in every style
    cfg = DemoConfig()
    mean = {s.video_id: render_frames(s, cfg).reshape(-1, 3).mean(0) for s in plan.specs}
    same_style_other_topic = [
        np.abs(mean[a.video_id] - mean[b.video_id]).sum()
        for a in plan.specs
        for b in plan.specs
        if a.style == b.style and a.topic != b.topic
    ]
    other_style_same_topic = [
        np.abs(mean[a.video_id] - mean[b.video_id]).sum()
        for a in plan.specs
        for b in plan.specs
        if a.style != b.style and a.topic == b.topic
    ]
    assert np.mean(same_style_other_topic) < 0.5 * np.mean(other_style_same_topic)
    titles = plan.videos.set_index("video_id")["title"]
    from pipelines.demo_data import TOPICS

    cooking = [s.video_id for s in plan.specs if s.topic == 0 and titles[s.video_id]]
    assert sum(any(w in titles[v] for w in TOPICS[0][1]) for v in cooking) >= 0.8 * len(cooking)


def test_bad_rows_present_for_the_quarantine_path():
    plan = plan_demo_source(DemoConfig(num_videos=16, num_users=4))
    assert {"v_corrupt", "v_missing"} <= set(plan.videos["video_id"])
    assert "v_unknown" in set(plan.events["video_id"])


def test_nobody_watches_a_video_before_its_upload_and_late_uploads_are_cold():
    plan = plan_demo_source(DemoConfig(include_bad_rows=False))
    released = plan.videos.set_index("video_id")["published_at"]
    ev = plan.events.assign(ts=plan.events["ts"].astype(int))
    assert (ev["ts"] >= ev["video_id"].map(released)).all()
    cut = ev["ts"].quantile(0.8)  # the global time split
    cold = set(ev.loc[ev["ts"] >= cut, "video_id"]) - set(ev.loc[ev["ts"] < cut, "video_id"])
    assert len(cold) >= 10  # videos first watched in the test window: only content can score them


def test_rewriting_the_source_re_renders_clips_whose_spec_changed(tmp_path):
    from pipelines.demo_data import write_demo_source

    small = {"num_videos": 8, "num_users": 4, "include_bad_rows": False, "frames_per_video": 4}
    write_demo_source(DemoConfig(seed=1, **small), tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "media").glob("*.mp4")}
    write_demo_source(DemoConfig(seed=1, **small), tmp_path)  # same specs: files kept as they are
    assert {p.name: p.read_bytes() for p in (tmp_path / "media").glob("*.mp4")} == first
    write_demo_source(DemoConfig(seed=2, **small), tmp_path)  # other styles and hues: re-rendered
    second = {p.name: p.read_bytes() for p in (tmp_path / "media").glob("*.mp4")}
    assert second.keys() == first.keys() and all(second[n] != first[n] for n in first)
