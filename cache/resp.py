"""RESP2 command packing in pure Python: what the serving client sends per request and publish
uses for its few single commands (whole blocks of keys are packed by ``cache.kernels``)."""

from __future__ import annotations

Arg = bytes | str | int


def pack(args: tuple[Arg, ...] | list[Arg]) -> bytes:
    """One command in RESP2 (array of bulk strings): what publish writes in bulk and the serving
    client sends per request."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if a.__class__ is not bytes:
            a = (a if a.__class__ is str else str(a)).encode()  # type: ignore[union-attr]
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))  # type: ignore[arg-type]
    return b"".join(out)
