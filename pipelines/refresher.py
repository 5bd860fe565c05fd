"""``vidrec refresher``: a user's list refreshed seconds after new watches.

A long-running process (several may run: they share the stream through the consumer group
``vidrec-refresher``, each entry delivered to one of them) that reads the events the API appends
to ``vidrec:{ns}:events``, and for every user in a batch:

1. reads the user's recent watches (the API's ``vidrec:{ns}:hist:{user}`` list, newest first);
2. scores them with the live version's numpy user tower (``recsys.online.OnlineModel``; no
   TensorFlow), the user's recent watches excluded;
3. writes the list into the live version's key for that user, expiring with the version, through
   ``cache.writer.write_if_live``: a publish that flipped the live pointer meanwhile is never
   undone (a refresher never writes into a version that is no longer live);

then acknowledges the batch. On start it first finishes its own pending entries; entries another
refresher left pending for a minute (it died) are claimed (``XAUTOCLAIM``). The live version is
read once a second and its model folder loaded when it changes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from cache import keys
from cache.writer import write_if_live
from pipelines.config import PipelineConfig

log = logging.getLogger(__name__)

GROUP = "vidrec-refresher"
CLAIM_IDLE_MS = 60_000


@dataclass
class Refresher:
    """One refresher process's state: its Redis client, consumer name, the loaded live model."""

    cfg: PipelineConfig
    recent: int = 50
    """How many recent watches are read per user (the API keeps ``recent_history`` of them)."""
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    client: Any = None
    version: str | None = None
    model: Any = None
    checked_at: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"events": 0, "users": 0, "written": 0, "stale": 0})

    def __post_init__(self) -> None:
        import redis

        from cache.writer import connect

        self.client = connect(self.cfg.redis_url)
        self.stream = keys.events_stream_key(self.cfg.namespace)
        try:  # new events only: what came before is in the published lists
            self.client.xgroup_create(self.stream, GROUP, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def live_model(self) -> Any:
        """The live version's ``OnlineModel`` (None: nothing live, or its folder is not here)."""
        if time.monotonic() - self.checked_at < 1.0 and self.model is not None:
            return self.model
        self.checked_at = time.monotonic()
        raw = self.client.get(keys.live_key(self.cfg.namespace))
        version = raw.decode() if raw else None
        if version != self.version:
            from recsys.online import OnlineModel

            folder = self.cfg.model_dir(str(version))
            try:
                self.model = OnlineModel(folder) if version else None
            except (OSError, ValueError, KeyError) as exc:
                log.warning("refresher: cannot load live version %s from %s (%s)", version, folder, exc)
                self.model = None
            self.version = version
            log.info("refresher: live version %s", version)
        return self.model

    def refresh(self, users: list[str]) -> int:
        """Recompute and write the users' lists into the live version; returns the lists written.
        A publish that flipped the pointer meanwhile: once more, with the new live version."""
        for _ in range(2):
            written = self._refresh_once(users)
            if written >= 0:
                return written
            self.checked_at = 0.0  # flipped (or expired): load the new live version
        return 0

    def _refresh_once(self, users: list[str]) -> int:
        model = self.live_model()
        if model is None or not users:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.lrange(keys.hist_key(self.cfg.namespace, user), 0, self.recent - 1)
        recents = [[v.decode() for v in r] for r in pipe.execute()]
        ranked = model.recommend_many(users, recents, self.cfg.topk, [set(r) for r in recents])
        ns, version = self.cfg.namespace, str(self.version)
        lists = {
            keys.user_key(ns, version, u): keys.encode_items([v for v, _ in r], [s for _, s in r])
            for u, r in zip(users, ranked, strict=True)
            if r
        }
        if not lists:
            return 0
        written = write_if_live(self.client, ns, version, lists)
        if written < 0:
            self.counts["stale"] += len(lists)
        return written

    def step(self, block_ms: int = 1000, count: int = 500, start: str = ">") -> int:
        """Read one batch (``start`` "0": this consumer's pending entries), refresh, acknowledge;
        returns the entries handled."""
        block = block_ms if start == ">" else None  # pending entries are read at once
        reply = self.client.xreadgroup(GROUP, self.consumer, {self.stream: start}, count=count, block=block)
        entries = reply[0][1] if reply else []
        if not entries:
            return 0
        users = list(dict.fromkeys(f[b"user_id"].decode() for _, f in entries if f and b"user_id" in f))
        self.counts["written"] += self.refresh(users)
        self.client.xack(self.stream, GROUP, *[sid for sid, _ in entries])
        self.counts["events"] += len(entries)
        self.counts["users"] += len(users)
        return len(entries)

    def claim_abandoned(self) -> None:
        """Take over entries another refresher left pending for ``CLAIM_IDLE_MS`` (it died)."""
        self.client.xautoclaim(self.stream, GROUP, self.consumer, CLAIM_IDLE_MS, "0-0", count=500)

    def run(self, stop: Any = None, block_ms: int = 1000) -> dict[str, int]:
        """Until ``stop`` (a threading.Event) is set, or forever."""
        while self.step(block_ms=0, start="0"):  # this consumer's own pending entries first
            pass
        last_claim = time.monotonic()
        while stop is None or not stop.is_set():
            self.step(block_ms=block_ms)
            if time.monotonic() - last_claim > CLAIM_IDLE_MS / 1000:
                self.claim_abandoned()
                while self.step(block_ms=0, start="0"):
                    pass
                last_claim = time.monotonic()
        return self.counts
