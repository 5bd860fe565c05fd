"""Where artifacts live: the workdir as a URL, and every artifact read and write behind one
small set of functions, so a workdir on object storage needs no code change.

``location("var/work")`` or ``location("file:///srv/vidrec")`` is a ``pathlib.Path``;
``location("s3://bucket/vidrec")`` (any scheme fsspec knows: ``gs://``, ``abfs://``,
``memory://`` in tests) is a ``upath.UPath``, which has the same ``/``, ``exists``, ``mkdir``,
``iterdir``, ``glob``, ``read_text`` and ``open`` as a local path, backed by fsspec (``s3fs``,
``gcsfs``... installed for the scheme used). Code that only joins, lists and opens paths works on
both unchanged; what needs more goes through the functions here:

* ``atomic_write`` (and ``write_json``, ``write_parquet``, ``write_bytes``, ``save_npy``,
  ``save_npz``): readers never see half a file. Locally a temporary file in the same folder and
  a rename; on object storage one whole-object upload (a PUT is atomic there).
* ``read_json``, ``read_parquet``, ``load_npy``, ``load_npz``: whole-file reads.
* ``local_copy`` / ``publish_dir``: the calls that need a real local path get one. TensorFlow's
  SavedModel writer and loader, ONNX Runtime's model file and SQLite (Airflow's embedded metadata
  DB, not under the workdir) open files by OS path, so a model folder is written to a local
  temporary folder and uploaded whole (``publish_dir``), and read back from a downloaded copy
  (``local_copy``); locally both are the folder itself (no copying).

Imports fsspec/universal_pathlib only when a URL names a remote scheme.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def location(value: str | os.PathLike[str] | Any) -> Any:
    """A workdir (or any artifact location) from a path or URL: ``Path`` when local (a plain path
    or ``file://``), else a ``upath.UPath`` on the URL's fsspec filesystem."""
    if is_remote(value):
        return value
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    if "://" in text:
        from upath import UPath

        return UPath(text)
    return Path(text)


def is_remote(path: Any) -> bool:
    """True for a location on an fsspec filesystem other than the local disk."""
    return not isinstance(path, Path) and hasattr(path, "fs") and getattr(path, "protocol", "") not in ("", "file")


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once (at import, before any threads)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: Any, write: Callable[[Path], None]) -> None:
    """Write through a temporary local file (``write`` fills it), then move it into place whole:
    readers never see half a file. Local: a rename in the same folder. Remote: one upload."""
    if is_remote(path):
        with tempfile.TemporaryDirectory(prefix="vidrec-upload-") as tmpdir:
            tmp = Path(tmpdir) / path.name
            write(tmp)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.fs.put_file(str(tmp), path.path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask),
        # so the API or another user's worker can read what the pipeline wrote
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Any, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def write_json(path: Any, obj: object) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


def write_parquet(path: Any, df: Any) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def save_npy(path: Any, array: np.ndarray) -> None:
    def write(p: Path) -> None:
        with open(p, "wb") as f:  # a file object: np.save would append .npy to a bare name
            np.save(f, array)

    atomic_write(path, write)


def save_npz(path: Any, compressed: bool = False, **arrays: np.ndarray) -> None:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)

    atomic_write(path, write)


def read_bytes(path: Any) -> bytes:
    return path.read_bytes()


def read_json(path: Any) -> Any:
    return json.loads(path.read_text())


def read_parquet(path: Any, **kwargs: Any) -> Any:
    import pandas as pd

    if not is_remote(path):
        return pd.read_parquet(path, **kwargs)
    with path.open("rb") as f:
        return pd.read_parquet(io.BytesIO(f.read()), **kwargs)


def load_npy(path: Any, mmap: bool = False) -> np.ndarray:
    """The array (``mmap``: memory-mapped where the file is local, else read whole)."""
    if not is_remote(path):
        return np.load(path, mmap_mode="r" if mmap else None)
    return np.load(io.BytesIO(path.read_bytes()))


def load_npz(path: Any) -> dict[str, np.ndarray]:
    """Every array of an .npz, read now (the file is closed on return)."""
    data = path.read_bytes() if is_remote(path) else None
    with np.load(io.BytesIO(data) if data is not None else path) as z:
        return {k: z[k] for k in z.files}


@contextlib.contextmanager
def local_copy(path: Any) -> Iterator[Path]:
    """A local path holding ``path`` (a file or a folder) for calls that open files by OS path:
    the path itself when local; a downloaded temporary copy, removed on exit, when remote."""
    if not is_remote(path):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="vidrec-download-") as tmpdir:
        dest = Path(tmpdir) / path.name
        if path.is_dir():
            path.fs.get(path.path.rstrip("/") + "/", str(dest), recursive=True)
        else:
            path.fs.get_file(path.path, str(dest))
        yield dest


@contextlib.contextmanager
def staging_dir(final: Any) -> Iterator[Path]:
    """A local folder to build ``final`` in; ``publish_dir`` moves it into place. Locally a
    hidden sibling of ``final`` (so the move is a rename on one filesystem)."""
    if is_remote(final):
        with tempfile.TemporaryDirectory(prefix="vidrec-stage-") as tmpdir:
            yield Path(tmpdir) / final.name
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(staged: Path, final: Any) -> None:
    """Put a folder built locally (``staging_dir``) at ``final``, replacing what was there: a
    rename locally; remote, the old objects removed, then every file uploaded."""
    if is_remote(final):
        if final.exists():
            final.fs.rm(final.path, recursive=True)
        final.fs.put(str(staged).rstrip("/") + "/", final.path, recursive=True)
        return
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    os.chmod(final, 0o777 & ~_UMASK)  # mkdtemp gives 0700


def remove_tree(path: Any) -> None:
    """Remove a folder and everything under it (nothing when it is not there)."""
    if is_remote(path):
        if path.exists():
            path.fs.rm(path.path, recursive=True)
        return
    shutil.rmtree(path, ignore_errors=True)
