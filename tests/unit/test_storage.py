"""The storage helper: a workdir given as a path or a URL, and every read and write through it,
on the local disk and on an fsspec filesystem that is not (``memory://``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import storage


def _remote():
    return storage.location(f"memory://vidrec-unit-{uuid.uuid4().hex[:8]}/work")


def test_location_parses_paths_and_urls(tmp_path):
    assert storage.location("var/work") == Path("var/work")
    assert storage.location(f"file://{tmp_path}") == tmp_path
    assert storage.location(tmp_path) == tmp_path and not storage.is_remote(tmp_path)
    remote = storage.location("memory://bucket/work")
    assert storage.is_remote(remote) and str(remote) == "memory://bucket/work"
    assert storage.location(remote) is remote
    assert str(remote / "runs" / "x.json") == "memory://bucket/work/runs/x.json"


def test_a_config_takes_its_workdir_as_a_url(tmp_path):
    from pipelines.options import build_config

    cfg = build_config({"source": str(tmp_path), "workdir": "memory://bucket/w"})
    assert storage.is_remote(cfg.workdir)
    assert str(cfg.partition("2026-11-28", "train")) == "memory://bucket/w/runs/2026-11-28/train"
    assert isinstance(build_config({"source": str(tmp_path), "workdir": str(tmp_path)}).workdir, Path)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_every_artifact_kind_round_trips(tmp_path, where):
    root = tmp_path / "w" if where == "local" else _remote()
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    storage.write_json(root / "runs" / "a.json", {"k": [1, 2]})
    storage.write_parquet(root / "runs" / "t.parquet", df)
    storage.save_npy(root / "m" / "v.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    storage.save_npz(root / "m" / "c.npz", x=np.ones(3), y=np.zeros((2, 2)))
    storage.write_bytes(root / "b.bin", b"\x00\x01")
    assert storage.read_json(root / "runs" / "a.json") == {"k": [1, 2]}
    pd.testing.assert_frame_equal(storage.read_parquet(root / "runs" / "t.parquet"), df)
    np.testing.assert_array_equal(storage.load_npy(root / "m" / "v.npy"), np.arange(6).reshape(2, 3))
    z = storage.load_npz(root / "m" / "c.npz")
    assert set(z) == {"x", "y"} and z["y"].shape == (2, 2)
    assert storage.read_bytes(root / "b.bin") == b"\x00\x01"
    # a failed write leaves what was there
    with pytest.raises(RuntimeError):
        storage.atomic_write(root / "runs" / "a.json", lambda p: (_ for _ in ()).throw(RuntimeError("boom")))
    assert storage.read_json(root / "runs" / "a.json") == {"k": [1, 2]}
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["a.json", "t.parquet"]
    storage.remove_tree(root / "m")
    assert not (root / "m" / "v.npy").exists()


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_folder_is_built_locally_then_put_in_place_whole(tmp_path, where):
    final = (tmp_path / "models" if where == "local" else _remote() / "models") / "v1"
    for generation in (1, 2):
        with storage.staging_dir(final) as staged:
            assert isinstance(staged, Path)
            (staged / "sub").mkdir(parents=True)
            (staged / "sub" / "f.txt").write_text(f"gen {generation}")
            if generation == 1:
                (staged / "only-in-1.txt").write_text("x")
            storage.publish_dir(staged, final)
        assert (final / "sub" / "f.txt").read_text() == f"gen {generation}"
    assert not (final / "only-in-1.txt").exists()  # replaced whole, not merged
    with storage.local_copy(final) as local:
        assert isinstance(local, Path) and (local / "sub" / "f.txt").read_text() == "gen 2"
    if where == "local":
        assert local == final and not [p for p in final.parent.iterdir() if p.name.startswith(".")]
