"""Redis Cluster: URLs, hash slots and the slot -> node map. Pure Python (the API imports it).

A cluster is selected by the URL's scheme, ``redis+cluster://`` (``rediss+cluster://`` for TLS),
with one or more seed nodes separated by commas, e.g.
``redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7000``; the client reads the slot map from the
first seed that answers ``CLUSTER SLOTS`` and follows MOVED / ASK redirections from then on. Every
other scheme (``redis://``, ``rediss://``, ``unix://``) is one Redis.

Keys carry hash tags (``cache.keys``): one user's keys live in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

SLOTS = 16384
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def key_slot(key: bytes | str) -> int:
    """The key's hash slot: of the part between the first ``{`` and the next ``}`` when that part
    is not empty (the hash tag), else of the whole key."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1 : end]
    return crc16(k) & (SLOTS - 1)


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


@dataclass(frozen=True)
class ClusterTarget:
    seeds: tuple[tuple[str, int], ...]
    tls: bool
    username: str | None
    password: str | None

    def node_url(self, host: str, port: int) -> str:
        """A ``redis://`` URL for one node, with this cluster's credentials."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:{self.password}@"
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{port}/0"


def parse_cluster_url(url: str) -> ClusterTarget:
    """``redis+cluster://[[user]:password@]host:port[,host:port...]`` (no database: a cluster has
    only database 0)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {url!r} (redis+cluster://host:port[,host:port...])")
    auth, _, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    username = password = None
    if auth:
        user, colon, pw = auth.partition(":")
        username, password = (unquote(user) or None, unquote(pw)) if colon else (None, unquote(user))
    seeds = []
    for part in filter(None, hosts.split(",")):
        host, colon, port = part.rpartition(":")
        if not colon or not port.isdigit():
            raise ValueError(f"Redis Cluster URL {url!r}: seed {part!r} is not host:port")
        seeds.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not seeds:
        raise ValueError(f"Redis Cluster URL {url!r} names no seed node")
    return ClusterTarget(tuple(seeds), scheme == "rediss+cluster", username, password)


class SlotMap:
    """Which master serves each of the 16384 slots, from a ``CLUSTER SLOTS`` reply."""

    def __init__(self, nodes: list[tuple[str, int]], owner: list[int]) -> None:
        self.nodes = nodes  # masters as (host, port)
        self.owner = owner  # [SLOTS] index into ``nodes``, -1 where no master serves the slot

    @classmethod
    def from_reply(cls, reply: list, default_host: str = "127.0.0.1") -> SlotMap:  # type: ignore[type-arg]
        """``reply``: CLUSTER SLOTS as parsed by hiredis or redis-py (start, end, [host, port, id], replicas...)."""
        nodes: list[tuple[str, int]] = []
        owner = [-1] * SLOTS
        for start, end, master, *_ in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            node = (host or default_host, int(master[1]))
            if node not in nodes:
                nodes.append(node)
            i = nodes.index(node)
            owner[int(start) : int(end) + 1] = [i] * (int(end) - int(start) + 1)
        return cls(nodes, owner)

    def node_of(self, slot: int) -> tuple[str, int] | None:
        i = self.owner[slot]
        return self.nodes[i] if i >= 0 else None

    def moved(self, slot: int, node: tuple[str, int]) -> None:
        """A MOVED reply: ``slot`` is now served by ``node``."""
        if node not in self.nodes:
            self.nodes.append(node)
        self.owner[slot] = self.nodes.index(node)


def parse_redirect(message: str) -> tuple[str, int, tuple[str, int]] | None:
    """("MOVED" or "ASK", slot, (host, port)) from a redirection error reply, else None."""
    parts = message.split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK") or not parts[1].isdigit():
        return None
    host, _, port = parts[2].rpartition(":")
    if not port.isdigit():
        return None
    return parts[0], int(parts[1]), (host or "127.0.0.1", int(port))
