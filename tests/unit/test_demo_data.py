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


def test_users_watch_their_topics():
    plan = plan_demo_source(DemoConfig(num_videos=80, num_users=60, seed=5, include_bad_rows=False))
    topic = {s.video_id: s.topic for s in plan.specs}
    ev = plan.events.assign(topic=plan.events["video_id"].map(topic))
    # Share of each user's views in their most-watched topic: far above uniform (1/8 = 0.125),
    # though capped because a topic has only 10 videos and a user watches up to 50.
    top_share = ev.groupby("user_id")["topic"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert top_share.mean() > 0.3
    assert (plan.events.groupby("user_id")["video_id"].nunique() == plan.events.groupby("user_id").size()).all()


def test_frames_depend_on_topic():
    plan = plan_demo_source(DemoConfig(num_videos=16, num_users=2, seed=5))
    cfg = DemoConfig()
    by_topic = {}
    for s in plan.specs:
        by_topic.setdefault(s.topic, []).append(render_frames(s, cfg).reshape(-1, 3).mean(0))
    a0, a1 = by_topic[0][:2]
    b0 = by_topic[4][0]
    assert np.abs(a0 - a1).sum() < np.abs(a0 - b0).sum()


def test_bad_rows_present_for_the_quarantine_path():
    plan = plan_demo_source(DemoConfig(num_videos=16, num_users=4))
    assert {"v_corrupt", "v_missing"} <= set(plan.videos["video_id"])
    assert "v_unknown" in set(plan.events["video_id"])
