from dataclasses import replace
from pathlib import Path

from pipelines.config import PipelineConfig
from recsys.model import TwoTowerConfig


def test_model_version_names_what_the_model_was_trained_on(tmp_path):
    cfg = PipelineConfig(source=tmp_path / "a", workdir=tmp_path / "work")
    version = cfg.model_version("2026-11-28")
    assert version.startswith("20261128-") and version == cfg.model_version("2026-11-28T03:00:00")
    # the same source given another way: the same id
    assert replace(cfg, source=Path(str(tmp_path / "x" / ".." / "a"))).model_version("2026-11-28") == version
    different = [
        replace(cfg, source=tmp_path / "b"),  # another data source in the same workdir
        replace(cfg, text_encoder="hashed-ngram"),
        replace(cfg, image_encoder="keras:resnet50"),
        replace(cfg, protocol="user_time"),
        replace(cfg, model=TwoTowerConfig(embedding_dim=cfg.model.embedding_dim * 2)),
    ]
    assert len({c.model_version("2026-11-28") for c in different} | {version}) == len(different) + 1
    assert replace(cfg, workdir=tmp_path / "elsewhere").model_version("2026-11-28") == version


def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    """mkstemp makes 0600 files; what the pipeline writes gets the mode a plain open() gives."""
    import os

    from pipelines.storage import atomic_write

    umask = os.umask(0)
    os.umask(umask)
    atomic_write(tmp_path / "a.json", lambda p: p.write_text("{}"))
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "a.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode
