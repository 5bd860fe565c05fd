"""Hyper-parameter search for the two-tower on validation data only.

    vidrec tune --source S --workdir W --run-date D [--protocol P] \
        --grid temperature=0.05,0.1,0.3 --grid use_user_id=true,false

Each setting is trained on the run date's dataset with early stopping; it is judged by its best
NDCG@10 on the validation events (each user's last ``validation_fraction`` of *training* events
by time), never on test events, so the chosen setting can then be evaluated on test honestly.
Writes ``<workdir>/tuning/<run_date>-<protocol>.json``, prints a table and the `vidrec train`
flags of the best setting. Tuned models stay under ``models/`` and are neither evaluated on test
nor published.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import fields, replace

from pipelines import dataset, train
from pipelines.config import PipelineConfig, parse_run_date
from pipelines.storage import write_json
from recsys.model import TwoTowerConfig

log = logging.getLogger(__name__)

TUNABLE = {f.name: f.type for f in fields(TwoTowerConfig)}
_PARSERS = {"int": int, "float": float, "bool": lambda v: _parse_bool(v), "str": str}


def _parse_bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def parse_settings(items: list[str]) -> dict[str, object]:
    """["temperature=0.3", "use_user_id=false"] -> {"temperature": 0.3, "use_user_id": False}."""
    out = {}
    for name, values in parse_grid(items, allow_empty=True).items():
        if len(values) != 1:
            raise ValueError(f"--set {name} takes one value, got {values}")
        out[name] = values[0]
    return out


def parse_grid(items: list[str], allow_empty: bool = False) -> dict[str, list[object]]:
    """["temperature=0.05,0.1", "use_user_id=true,false"] -> {"temperature": [0.05, 0.1], ...}."""
    grid: dict[str, list[object]] = {}
    for item in items:
        name, _, values = item.partition("=")
        name = name.strip().replace("-", "_")
        kind = TUNABLE.get(name)
        if kind not in _PARSERS:
            choices = sorted(n for n, t in TUNABLE.items() if t in _PARSERS)
            raise ValueError(f"cannot tune {name!r}; tunable model settings are {choices}")
        if not values:
            raise ValueError(f"grid entry {item!r} must look like name=value1,value2")
        grid[name] = [_PARSERS[str(kind)](v.strip()) for v in values.split(",")]
    if not grid and not allow_empty:
        raise ValueError("give at least one --grid name=v1,v2")
    return grid


def run_tuning(cfg: PipelineConfig, run_date: str, grid: dict[str, list[object]]) -> dict[str, object]:
    if cfg.model.early_stopping_patience == 0 or cfg.model.validation_fraction == 0:
        raise ValueError("tuning needs a validation split: early_stopping_patience and validation_fraction > 0")
    ds = dataset.load(cfg, run_date)
    rows = []
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        setting = dict(zip(names, values, strict=True))
        # Only the validation score matters here: no refit on all training events (half the time).
        model = replace(cfg.model, **{"refit_after_validation": False, **setting})  # bad values fail here
        variant = replace(cfg, model=model, tune_seconds=0.0)
        summary = train.train_and_export(variant, run_date, ds)
        rows.append(
            {
                "setting": setting,
                "version": summary["version"],
                "val_ndcg@10": summary["val_ndcg@10"],
                "best_epoch": summary["best_epoch"],
                "epochs_run": summary["epochs_run"],
                "validation_users": summary["validation_users"],
            }
        )
        log.info("tune %s: validation ndcg@10 %.4f", setting, summary["val_ndcg@10"])
    best = max(rows, key=lambda r: r["val_ndcg@10"])
    out = {
        "run_date": run_date,
        "data_source": str(cfg.source),
        "protocol": cfg.protocol,
        "judged_on": f"NDCG@10 on each user's last {cfg.model.validation_fraction:.0%} of training events (validation)",
        "base_model": {n: getattr(cfg.model, n) for n in names},
        "rows": rows,
        "best": best,
        "train_flags": " ".join(_flag(n, v) for n, v in best["setting"].items()),
    }
    write_json(cfg.workdir / "tuning" / f"{parse_run_date(run_date).isoformat()}-{cfg.protocol}.json", out)
    print(format_tuning(out), flush=True)
    return out


def _flag(name: str, value: object) -> str:
    return f"--set {name}={str(value).lower() if isinstance(value, bool) else value}"


def format_tuning(report: dict) -> str:  # type: ignore[type-arg]
    lines = [f"tuning  data: {report['data_source']}  protocol: {report['protocol']}  judged on {report['judged_on']}"]
    for r in sorted(report["rows"], key=lambda r: -r["val_ndcg@10"]):
        setting = " ".join(f"{k}={v}" for k, v in r["setting"].items())
        lines.append(f"  {setting:<50} val ndcg@10 {r['val_ndcg@10']:.4f}  best epoch {r['best_epoch']}")
    lines.append(f"best: {report['train_flags']}")
    return "\n".join(lines)
