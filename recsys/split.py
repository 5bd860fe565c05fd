"""Evaluation split protocols. Every reported metric names the protocol that produced it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GLOBAL_TIME = "global_time"


@dataclass(frozen=True)
class Split:
    protocol: str
    train: pd.DataFrame
    test: pd.DataFrame
    cutoff_ts: int

    def describe(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "cutoff_ts": self.cutoff_ts,
            "train_events": len(self.train),
            "test_events": len(self.test),
        }


def global_time_split(events: pd.DataFrame, test_fraction: float) -> Split:
    """Train on events before the cutoff time T, test on events at or after it.

    T is the (1 - test_fraction) quantile of event timestamps, so about ``test_fraction`` of
    events are held out; every test event is later than every training event.
    """
    if events.empty:
        raise ValueError("cannot split an empty events table")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cutoff = int(np.quantile(events["ts"].to_numpy(), 1.0 - test_fraction, method="higher"))
    train = events[events["ts"] < cutoff].reset_index(drop=True)
    test = events[events["ts"] >= cutoff].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(f"time split at {cutoff} leaves an empty side; events need distinct timestamps")
    return Split(GLOBAL_TIME, train, test, cutoff)
