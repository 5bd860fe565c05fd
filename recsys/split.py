"""Evaluation split protocols. Every reported metric names the protocol that produced it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.protocols import EXCLUDES_TRAIN_ITEMS, GLOBAL_TIME, LEAVE_LAST_OUT, PROTOCOLS, RANDOM, USER_TIME


class TooFewEvents(ValueError):
    """The events cannot be split into a non-empty training and test side."""


@dataclass(frozen=True)
class Split:
    protocol: str
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff_ts: int | None = None
    """Only for global_time: the time T separating train and test."""

    def describe(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "cutoff_ts": self.cutoff_ts,
            "train_events": len(self.train),
            "test_events": len(self.test),
        }

    @property
    def excludes_train_items(self) -> bool:
        return EXCLUDES_TRAIN_ITEMS[self.protocol]


def global_time_split(events: pd.DataFrame, test_fraction: float) -> Split:
    """Train on events before the cutoff time T, test on events at or after it.

    T is the (1 - test_fraction) quantile of event timestamps, so about ``test_fraction`` of
    events are held out; every test event is later than every training event.
    """
    if events.empty:
        raise TooFewEvents("cannot split an empty events table")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cutoff = int(np.quantile(events["ts"].to_numpy(), 1.0 - test_fraction, method="higher"))
    train = events[events["ts"] < cutoff].reset_index(drop=True)
    test = events[events["ts"] >= cutoff].reset_index(drop=True)
    if train.empty or test.empty:
        raise TooFewEvents(f"time split at {cutoff} leaves an empty side; events need distinct timestamps")
    return Split(GLOBAL_TIME, train, test, cutoff)


def _ranked_within_user(events: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(position of each event in its user's time order from 0, that user's event count)."""
    order = events.sort_values(["user_id", "ts"], kind="stable")
    pos = order.groupby("user_id").cumcount().reindex(events.index)
    count = events.groupby("user_id")["user_id"].transform("size")
    return pos, count


def user_time_split(events: pd.DataFrame, test_fraction: float) -> Split:
    """Each user's last ``test_fraction`` of events (by time, at least one) are test, the rest train.

    Users with a single event are train-only (nothing left to learn them from otherwise).
    """
    if events.empty:
        raise TooFewEvents("cannot split an empty events table")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pos, count = _ranked_within_user(events)
    n_test = np.maximum(1, np.floor(count * test_fraction)).where(count > 1, 0)
    is_test = pos >= count - n_test
    return Split(USER_TIME, events[~is_test].reset_index(drop=True), events[is_test].reset_index(drop=True))


def leave_last_out_split(events: pd.DataFrame) -> Split:
    """Each user's last event (by time) is test; users with one event are train-only."""
    if events.empty:
        raise TooFewEvents("cannot split an empty events table")
    pos, count = _ranked_within_user(events)
    is_test = (pos == count - 1) & (count > 1)
    return Split(LEAVE_LAST_OUT, events[~is_test].reset_index(drop=True), events[is_test].reset_index(drop=True))


def random_split(events: pd.DataFrame, test_fraction: float, seed: int = 42) -> Split:
    """The TFRS basic-retrieval tutorial's protocol: a random ``test_fraction`` of events is test."""
    if events.empty:
        raise TooFewEvents("cannot split an empty events table")
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(events)) < test_fraction
    return Split(RANDOM, events[~is_test].reset_index(drop=True), events[is_test].reset_index(drop=True))


def evaluation_targets(
    train_events: pd.DataFrame, test_events: pd.DataFrame, exclude_train_items: bool = True
) -> tuple[np.ndarray, list[np.ndarray], list[set[int]]]:
    """(user indices, per-user items to exclude from ranking, per-user relevant items) for evaluable users.

    With ``exclude_train_items`` a user's training videos are neither ranked nor relevant.
    """
    seen = train_events.groupby("user_idx")["item_idx"].agg(lambda s: np.unique(s.to_numpy()))
    later = test_events.groupby("user_idx")["item_idx"].agg(set)
    users, exclude, relevant = [], [], []
    nothing = np.zeros(0, np.int64)
    for u, items in later.items():
        if u not in seen.index:
            continue
        rel = items - set(seen[u].tolist()) if exclude_train_items else items
        if rel:
            users.append(int(u))
            exclude.append(seen[u] if exclude_train_items else nothing)
            relevant.append(rel)
    return np.asarray(users, np.int64), exclude, relevant


def validation_split(
    train: pd.DataFrame, fraction: float, protocol: str = USER_TIME
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, validation) carved from the training side only, so tuning and early stopping never
    see test events, the same way the protocol carves test from all events: under global_time the
    training events after the (1 - fraction) time quantile (so validation has new videos and new
    users, as test does); otherwise each user's last ``fraction`` of training events by time.
    """
    if protocol == GLOBAL_TIME:
        try:
            split = global_time_split(train, fraction)
        except ValueError:  # too few distinct timestamps: fall back to the per-user split
            split = user_time_split(train, fraction)
    else:
        split = user_time_split(train, fraction)
    return split.train, split.test


def make_split(events: pd.DataFrame, protocol: str, test_fraction: float = 0.2, seed: int = 42) -> Split:
    if protocol == GLOBAL_TIME:
        return global_time_split(events, test_fraction)
    if protocol == USER_TIME:
        return user_time_split(events, test_fraction)
    if protocol == LEAVE_LAST_OUT:
        return leave_last_out_split(events)
    if protocol == RANDOM:
        return random_split(events, test_fraction, seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
