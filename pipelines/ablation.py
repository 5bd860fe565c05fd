"""Modality ablation: retrain the two-tower with each set of item-tower inputs (the video id, the
text and visual embeddings, optionally the comments' sentiment), for each fusion,
on the run date's dataset and split, and evaluate every variant through the same code.

    vidrec ablate --source S --workdir W --run-date D [--protocol P] [--fusions concat,attention]
                  [--inputs id_only,id+text+visual,id+text+visual+sentiment]

Writes ``runs/<date>/ablation/report.json`` and prints one table. Nothing is published and the
run's own model pointer (``runs/<date>/train/model.json``) is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pipelines import artifacts, dataset, evaluate, train
from pipelines.config import PipelineConfig
from pipelines.storage import write_json

log = logging.getLogger(__name__)

ABLATIONS: dict[str, tuple[str, ...]] = {
    "id_only": ("id",),
    "id+text": ("id", "caption", "comments"),
    "id+visual": ("id", "visual"),
    "id+text+visual": ("id", "visual", "caption", "comments"),
}
"""The input sets compared by default."""
EXTRA_INPUTS: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "id+text+visual+sentiment": (ABLATIONS["id+text+visual"], {"sentiment_input": True}),
}
"""More input sets, by name (``--inputs``): the modalities and the model settings that add them."""


def input_sets() -> dict[str, tuple[tuple[str, ...], dict[str, object]]]:
    return {name: (modalities, {}) for name, modalities in ABLATIONS.items()} | EXTRA_INPUTS


def run_ablation(
    cfg: PipelineConfig,
    run_date: str,
    fusions: tuple[str, ...] = ("concat",),
    inputs: tuple[str, ...] = tuple(ABLATIONS),
) -> dict[str, object]:
    known = input_sets()
    if unknown := [n for n in inputs if n not in known]:
        raise ValueError(f"unknown input sets {unknown}; choose from {sorted(known)}")
    ds = dataset.load(cfg, run_date)
    rows = []
    for fusion in fusions:
        for name in inputs:
            modalities, settings = known[name]
            # each variant is trained with the settings given (no tuning per variant)
            model = replace(cfg.model, fusion=fusion, modalities=modalities, **settings)  # type: ignore[arg-type]
            variant = replace(cfg, tune_seconds=0.0, model=model)
            summary = train.train_and_export(variant, run_date, ds)
            model = artifacts.load_model_version(variant, str(summary["version"]))
            report = evaluate.evaluate_model(variant, run_date, ds, model, with_baselines=False)
            m = report["metrics"]["two_tower"]
            cold = report["cohorts"].get("cold_videos", {}).get("two_tower", {})
            rows.append(
                {
                    "fusion": fusion,
                    "inputs": name,
                    "version": summary["version"],
                    "fusion_weights": summary["fusion_weights"],
                    "recall@10": m["recall@10"],
                    "recall@10_se": m["recall@10_se"],
                    "ndcg@10": m["ndcg@10"],
                    "ndcg@10_se": m["ndcg@10_se"],
                    "cold_ndcg@10": cold.get("ndcg@10"),
                    "users": m["users"],
                }
            )
            log.info("ablation %s %s: ndcg@10 %.4f", fusion, name, m["ndcg@10"])
    out = {
        "run_date": run_date,
        "data_source": str(cfg.source),
        "protocol": ds.split.protocol,
        "rows": rows,
    }
    write_json(cfg.workdir / "runs" / run_date / "ablation" / "report.json", out)
    print(format_ablation(out), flush=True)
    return out


def format_ablation(report: dict) -> str:  # type: ignore[type-arg]
    lines = [
        f"modality ablation  data: {report['data_source']}  protocol: {report['protocol']}",
        f"{'fusion':<14}{'inputs':<16}{'recall@10':>17}{'ndcg@10':>17}{'cold ndcg@10':>14}",
    ]
    for r in report["rows"]:
        cold = "" if r["cold_ndcg@10"] is None else f"{r['cold_ndcg@10']:.4f}"
        lines.append(
            f"{r['fusion']:<14}{r['inputs']:<16}{r['recall@10']:>10.4f}±{r['recall@10_se']:.4f}"
            f"{r['ndcg@10']:>10.4f}±{r['ndcg@10_se']:.4f}{cold:>14}"
        )
    return "\n".join(lines)
