import numpy as np
import pandas as pd
import pytest

from recsys.split import PROTOCOLS, make_split


def _events():
    # user a: 10 events at t=1..10; user b: 3 events at t=5..7; user c: one event at t=20
    rows = [("a", f"v{t}", t) for t in range(1, 11)] + [("b", f"w{t}", t) for t in (5, 6, 7)] + [("c", "z", 20)]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "ts"])


def test_global_time_split_cuts_at_a_time():
    s = make_split(_events(), "global_time", 0.2)
    # sorted ts: 1 2 3 4 5 5 6 6 7 7 8 9 10 20; the 0.8 quantile sits at position 0.8 x 13 = 10.4,
    # "higher" takes index 11 -> T = 9: test = ts >= 9 -> a's t=9, 10 and c's t=20
    assert s.cutoff_ts == 9 and sorted(s.test["ts"]) == [9, 10, 20]
    assert s.train["ts"].max() < s.test["ts"].min()


def test_user_time_split_holds_out_each_users_last_fifth():
    s = make_split(_events(), "user_time", 0.2)
    test = s.test.groupby("user_id")["ts"].apply(sorted).to_dict()
    # a: floor(10 * 0.2) = 2 -> t=9, 10; b: floor(0.6) = 0 -> at least 1 -> t=7; c: single event, train only
    assert test == {"a": [9, 10], "b": [7]}
    assert set(s.train["user_id"]) == {"a", "b", "c"}
    for user, group in s.test.groupby("user_id"):
        assert s.train.loc[s.train["user_id"] == user, "ts"].max() < group["ts"].min()  # no leakage


def test_leave_last_out_and_random():
    s = make_split(_events(), "leave_last_out")
    assert sorted(zip(s.test["user_id"], s.test["ts"], strict=True)) == [("a", 10), ("b", 7)]
    r1, r2 = make_split(_events(), "random", 0.5, seed=1), make_split(_events(), "random", 0.5, seed=1)
    assert r1.test.equals(r2.test) and len(r1.train) + len(r1.test) == 14
    assert not r1.excludes_train_items and s.excludes_train_items


def test_every_split_partitions_the_events():
    for protocol in PROTOCOLS:
        s = make_split(_events(), protocol, 0.2)
        assert len(s.train) + len(s.test) == 14, protocol
    with pytest.raises(ValueError, match="unknown protocol"):
        make_split(_events(), "magic")


def test_validation_split_comes_from_training_events_only():
    from recsys.split import make_split, validation_split

    rng = np.random.default_rng(0)
    events = pd.DataFrame(
        {
            "user_id": rng.choice(["a", "b", "c"], 300),
            "video_id": rng.choice(list("vwxyz"), 300),
            "ts": rng.permutation(300),
        }
    )
    split = make_split(events, "user_time", 0.2)
    fit, held_out = validation_split(split.train, 0.1)
    assert len(fit) + len(held_out) == len(split.train)
    # nothing from test leaks into tuning data
    key = lambda df: set(zip(df["user_id"], df["ts"], strict=True))  # noqa: E731
    assert not (key(fit) | key(held_out)) & key(split.test)
    # per user, every validation event is later than every fitting event
    for user, group in held_out.groupby("user_id"):
        assert group["ts"].min() > fit[fit["user_id"] == user]["ts"].max()


def test_unservable_videos_are_neither_ranked_nor_relevant():
    from pipelines.evaluate import drop_unservable

    users = np.array([0, 1, 2])
    exclude = [np.array([5]), np.array([], np.int64), np.array([1])]
    relevant = [{3, 9}, {9}, {4}]
    u, e, r = drop_unservable(users, exclude, relevant, np.array([9]))
    # user 1's only relevant video is unservable: not evaluated; the others never see video 9
    assert u.tolist() == [0, 2] and r == [{3}, {4}]
    assert [x.tolist() for x in e] == [[5, 9], [1, 9]]
