"""The evaluation report: one self-contained HTML file (charts as inline SVG, thumbnails as
embedded JPEG) beside the JSON of the same numbers, and a side-by-side comparison of two runs.

    runs/<date>/evaluate/report.json   the numbers (written by the evaluate step)
    runs/<date>/evaluate/report.html   this page: metrics table (model and baselines, data set and
        protocol named), Recall@K / NDCG@K curves, cohort bars, coverage and popularity bias,
        training and validation curves, learned fusion weights, the modality ablation (when
        ``vidrec ablate`` ran for the date), a 2-D PCA projection of the item embeddings coloured
        by category, and example users with their history and recommendations.

    vidrec report compare A B --out compare.html   (A, B: report.json files or evaluate folders)
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
MODEL_ORDER = ("two_tower", "als", "item_knn", "popularity", "content_only")
K_VALUES = (10, 20, 50)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:.8em}.wide{overflow-x:auto}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.best{font-weight:bold;background:#eef6ee}
.better{background:#d9f2d9}.worse{background:#f8d7d7}.muted{color:#777;font-size:.85em}
.charts{display:flex;flex-wrap:wrap;gap:16px}.user{margin:12px 0;padding:8px;border:1px solid #eee}
.strip{display:flex;flex-wrap:wrap;gap:6px}.vid{width:110px;font-size:.75em}.vid img{width:104px;height:58px;object-fit:cover;display:block;background:#eee}.vid.wide{width:200px}.vid img.summary{width:194px;height:auto;object-fit:contain}
.hit{outline:3px solid #2ca02c}
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


# ----------------------------------------------------------------------------- SVG charts


def _axes(w: int, h: int, pad: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_esc(title)}">',
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#999"/>',
        f'<line x1="{pad}" y1="24" x2="{pad}" y2="{h - pad}" stroke="#999"/>',
    ]


def _legend(names: list[str], x: int, y: int) -> list[str]:
    out = []
    for i, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{y + 14 * i - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text x="{x + 14}" y="{y + 14 * i}" font-size="11">{_esc(name)}</text>')
    return out


def line_chart(series: dict[str, list[tuple[float, float]]], title: str, w: int = 520, h: int = 280) -> str:
    pad, right = 44, 130
    pts = [p for s in series.values() for p in s if p[1] is not None and math.isfinite(p[1])]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
    sx = lambda x: pad + (x - x0) / (x1 - x0) * (w - pad - right)  # noqa: E731
    sy = lambda y: h - pad - (y - y0) / (y1 - y0) * (h - pad - 30)  # noqa: E731
    out = _axes(w, h, pad, title)
    for tick in np.linspace(y0, y1, 5):
        out.append(f'<text x="{pad - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:.3g}</text>')
    for x in sorted(set(xs)):
        out.append(f'<text x="{sx(x):.1f}" y="{h - pad + 14}" text-anchor="middle" font-size="10">{x:g}</text>')
    for i, points in enumerate(series.values()):
        s = [p for p in points if p[1] is not None and math.isfinite(p[1])]
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in s]
    out += _legend(list(series), w - right + 10, 40)
    return "\n".join([*out, "</svg>"])


def bar_chart(groups: list[str], series: dict[str, list[float]], title: str, w: int = 520, h: int = 280) -> str:
    pad, right = 44, 130
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    if not groups or not values:
        return ""
    top = max(values) * 1.1 or 1.0
    out = _axes(w, h, pad, title)
    gw = (w - pad - right) / len(groups)
    bw = gw * 0.8 / max(len(series), 1)
    for g, group in enumerate(groups):
        out.append(
            f'<text x="{pad + gw * (g + 0.5):.1f}" y="{h - pad + 14}" text-anchor="middle" font-size="10">{_esc(group)}</text>'
        )
        for i, vs in enumerate(series.values()):
            v = vs[g] if vs[g] is not None and math.isfinite(vs[g]) else 0.0
            bh = v / top * (h - pad - 30)
            x = pad + gw * g + gw * 0.1 + bw * i
            out.append(
                f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_esc(group)}: {v:.4f}</title></rect>'
            )
    for tick in np.linspace(0, top, 5):
        y = h - pad - tick / top * (h - pad - 30)
        out.append(f'<text x="{pad - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.3g}</text>')
    out += _legend(list(series), w - right + 10, 40)
    return "\n".join([*out, "</svg>"])


def scatter(points: np.ndarray, labels: list[str], title: str, w: int = 700, h: int = 460) -> str:
    pad, right = 20, 150
    if len(points) == 0:
        return ""
    names = [n for n, _ in sorted(dict.fromkeys(labels, 0).items())]
    colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_esc(title)}">',
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>',
    ]
    for (x, y), label in zip(points, labels, strict=True):
        px = pad + (x - lo[0]) / span[0] * (w - pad - right)
        py = h - pad - (y - lo[1]) / span[1] * (h - pad - 30)
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour[label]}" fill-opacity="0.7"/>')
    out += _legend(names[:12], w - right + 10, 40)
    return "\n".join([*out, "</svg>"])


# ----------------------------------------------------------------------------- report pieces


def _models(metrics: dict) -> list[str]:  # type: ignore[type-arg]
    return [m for m in MODEL_ORDER if m in metrics] + sorted(m for m in metrics if m not in MODEL_ORDER)


def metrics_table(report: dict) -> str:  # type: ignore[type-arg]
    metrics = report["metrics"]
    cols = [f"{m}@{k}" for k in K_VALUES for m in ("recall", "ndcg")] + ["hitrate@10", "mrr@10"]
    extra = ["coverage@10", "novelty@10", "popularity@10"]
    best = {c: max(metrics[n][c] for n in metrics) for c in cols}
    rows = ["<table><tr><th>model</th>" + "".join(f"<th>{c}</th>" for c in cols + extra) + "</tr>"]
    for name in _models(metrics):
        m = metrics[name]
        cells = [
            f'<td class="{"best" if m[c] == best[c] else ""}">{_fmt(m[c])} <span class="muted">± {_fmt(m.get(c + "_se"))}</span></td>'
            for c in cols
        ]
        cells += [f"<td>{_fmt(m.get(c), 3)}</td>" for c in extra]
        rows.append(f"<tr><td>{_esc(name)}</td>{''.join(cells)}</tr>")
    return "\n".join([*rows, "</table>"])


def _thumbnail(media_file: str, width: int = 160) -> str | None:
    """A JPEG data URI of the video's middle frame, or None where the file cannot be read."""
    if not media_file:
        return None
    import cv2

    cap = cv2.VideoCapture(media_file)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if n > 2:
            cap.set(cv2.CAP_PROP_POS_FRAMES, n // 2)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        return None
    h, w = frame.shape[:2]
    frame = cv2.resize(frame, (width, max(1, int(h * width / w))))
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return _jpeg_uri(buf.tobytes()) if ok else None


def _jpeg_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _video_card(
    vid: str,
    videos: dict[str, dict],  # type: ignore[type-arg]
    thumbs: dict[str, str | None],
    hit: bool = False,
    strips: dict[str, str] | None = None,
) -> str:
    """One video: its summary strip (its most representative frames, in time order) where there is
    one, else its middle frame; title, category; outlined when it was a held-out video."""
    info = videos.get(vid, {})
    title = info.get("title") or "(no title)"
    strip, thumb = (strips or {}).get(vid), thumbs.get(vid)
    if strip:
        img = f'<img class="summary" src="{strip}" alt="summary frames of {_esc(title)}">'
    elif thumb:
        img = f'<img src="{thumb}" alt="{_esc(title)}">'
    else:
        img = '<div style="width:104px;height:58px;background:#eee"></div>'
    return (
        f'<div class="vid{" wide" if strip else ""}{" hit" if hit else ""}" title="{_esc(vid)}">{img}{_esc(title)[:40]}'
        f'<br><span class="muted">{_esc(info.get("category", ""))}</span></div>'
    )


def examples_section(report: dict, videos: dict[str, dict], strips: dict[str, str] | None = None) -> str:  # type: ignore[type-arg]
    """The example users' last watches and recommendations, each video shown by its summary strip
    (``strips``: video id -> JPEG data URI) or, without one, a thumbnail of its middle frame."""
    examples = report.get("examples") or []
    if not examples:
        return "<p class='muted'>No example users in this report.</p>"
    strips = strips or {}
    ids = {v for e in examples for v in e["history"] + e["recommended"]}
    thumbs = {v: _thumbnail(videos.get(v, {}).get("media_file", "")) for v in ids - set(strips)}
    parts = []
    for e in examples:
        held = set(e["held_out"])
        parts.append(
            f'<div class="user"><b>{_esc(e["user_id"])}</b> <span class="muted">{len(held)} held-out videos; '
            "green outline = a held-out video the model found</span>"
            "<p>Last watched (training):</p><div class='strip'>"
            + "".join(_video_card(v, videos, thumbs, strips=strips) for v in e["history"])
            + "</div><p>Recommended (two_tower, top 10):</p><div class='strip'>"
            + "".join(_video_card(v, videos, thumbs, v in held, strips) for v in e["recommended"])
            + "</div></div>"
        )
    return "\n".join(parts)


def projection_svg(item_vectors: np.ndarray, categories: list[str], limit: int = 3000, seed: int = 0) -> str:
    """A 2-D PCA projection of (a sample of) the item embeddings, coloured by category."""
    if len(item_vectors) < 3:
        return ""
    rng = np.random.default_rng(seed)
    rows = (
        np.arange(len(item_vectors))
        if len(item_vectors) <= limit
        else rng.choice(len(item_vectors), limit, replace=False)
    )
    x = item_vectors[rows] - item_vectors[rows].mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    labels = [categories[i] or "(none)" for i in rows]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    top = set(sorted(counts, key=lambda c: -counts[c])[:9])
    labels = [label if label in top else "other" for label in labels]
    return scatter(x @ vt[:2].T, labels, f"Item embeddings, PCA (n={len(rows)}), coloured by category")


def cohorts_section(cohorts: dict, models: list[str]) -> str:  # type: ignore[type-arg]
    """The cohort chart and table (NDCG@10 per cohort and model)."""
    names = list(cohorts)
    chart = bar_chart(
        [f"{c} ({next(iter(cohorts[c].values()))['users']})" for c in names],
        {m: [cohorts[c].get(m, {}).get("ndcg@10", float("nan")) for c in names] for m in models},
        "NDCG@10 by cohort (users)",
    )
    rows = "".join(
        f"<tr><td>{_esc(c)}</td>"
        + "".join(f"<td>{_fmt(cohorts[c].get(m, {}).get('ndcg@10'))}</td>" for m in models)
        + "</tr>"
        for c in names
    )
    return f"""<div class="charts">{chart}</div>
<table><tr><th>cohort: NDCG@10</th>{"".join(f"<th>{_esc(m)}</th>" for m in models)}</tr>{rows}</table>"""


def training_section(training: dict) -> str:  # type: ignore[type-arg]
    """Epochs, the early-stopping choice and the refit, with the loss and validation curves."""
    loss = training.get("loss") or []
    val = training.get("val_ndcg@10") or []
    charts = line_chart({"training loss": list(enumerate(loss, 1))}, "Training loss per epoch")
    if val:
        charts += line_chart({"validation NDCG@10": list(enumerate(val, 1))}, "Validation NDCG@10 per epoch")
    refit = (
        f"; then refit on all training events for {training['refit_epochs']} epochs (the loss curve is the refit's)"
        if training.get("refit_epochs")
        else ""
    )
    return f"""<p>{training.get("epochs_run", "?")} epochs run, best epoch {training.get("best_epoch", "?")} by validation NDCG@10
({training.get("validation_users", 0)} users' last training events held out){refit}.</p>
<div class="charts">{charts}</div>"""


def fusion_section(fusion: dict | None, ablation: dict | None) -> str:  # type: ignore[type-arg]
    """The learned modality weights (weighted_sum, attention) and the ablation table, if any."""
    weights = (fusion or {}).get("mean_modality_weights")
    fusion_html = (
        bar_chart(list(weights), {"weight": list(weights.values())}, f"Learned modality weights ({fusion['fusion']})")
        if weights
        else f"<p class='muted'>Fusion {_esc((fusion or {}).get('fusion', '?'))}: no per-modality weights to show (concat).</p>"
    )
    ablation_html = "<p class='muted'>No ablation for this run date (run <code>vidrec ablate</code>).</p>"
    if ablation:
        rows = "".join(
            f"<tr><td>{_esc(r['fusion'])}</td><td>{_esc(r['inputs'])}</td><td>{_fmt(r['recall@10'])}</td>"
            f"<td>{_fmt(r['ndcg@10'])} <span class='muted'>± {_fmt(r['ndcg@10_se'])}</span></td>"
            f"<td>{_fmt(r['cold_ndcg@10'])}</td></tr>"
            for r in ablation["rows"]
        )
        ablation_html = (
            "<table><tr><th>fusion</th><th>item-tower inputs</th><th>recall@10</th><th>ndcg@10</th>"
            f"<th>cold-video ndcg@10</th></tr>{rows}</table>"
        )
    return f'<div class="charts">{fusion_html}</div>\n{ablation_html}'


def render_html(
    report: dict,  # type: ignore[type-arg]
    videos: dict[str, dict],  # type: ignore[type-arg]
    item_vectors: np.ndarray | None,
    items: list[str],
    fusion: dict | None,  # type: ignore[type-arg]
    ablation: dict | None,  # type: ignore[type-arg]
    strips: dict[str, str] | None = None,
) -> str:
    """The page; ``strips``: the example users' videos' summary strips (id -> JPEG data URI)."""
    metrics = report["metrics"]
    models = _models(metrics)
    curves = "".join(
        line_chart(
            {m: [(k, metrics[m].get(f"{name}@{k}")) for k in K_VALUES] for m in models}, f"{name.capitalize()}@K"
        )
        for name in ("recall", "ndcg")
    )
    coverage = bar_chart(["coverage@10"], {m: [metrics[m]["coverage@10"]] for m in models}, "Catalogue coverage@10")
    popularity = bar_chart(
        ["popularity@10"],
        {m: [metrics[m]["popularity@10"]] for m in models},
        "Mean training views of recommended videos",
    )
    projection = ""
    if item_vectors is not None and len(items) == len(item_vectors):
        projection = projection_svg(item_vectors, [videos.get(v, {}).get("category", "") for v in items])
    cfg = report.get("model_config") or {}
    title = f"vidrec evaluation: {report['data_source']} ({report['protocol']})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_esc(title)}</h1>
<p>Model version <b>{_esc(report["model_version"])}</b>, run date {_esc(report["run_date"])}. Data set
<code>{_esc(report["data_source"])}</code>. Protocol <b>{_esc(report["protocol"])}</b>: {_esc(report["protocol_detail"])}.
Users evaluated: <b>{report["users_evaluated"]}</b> of {report["users_total"]}; train events {report["train_events"]},
test events {report["test_events"]}. Each cell is the mean over evaluated users ± its standard error.</p>
<h2>Model and baselines</h2>
<div class="wide">{metrics_table(report)}</div>
<p class="muted">two_tower settings: {_esc(", ".join(f"{k}={v}" for k, v in cfg.items()))}</p>
<div class="charts">{curves}</div>
<h2>Cohorts</h2>
{cohorts_section(report.get("cohorts") or {}, models)}
<p class="muted">cold_videos: only test videos with no training event count as relevant; light/heavy users:
bottom/top third of evaluated users by training events.</p>
<h2>Coverage and popularity bias</h2>
<div class="charts">{coverage}{popularity}</div>
<h2>Training</h2>
{training_section(report.get("training") or {})}
<h2>Fusion and modality ablation</h2>
{fusion_section(fusion, ablation)}
<h2>Item embeddings</h2>
<div class="charts">{projection}</div>
<h2>Example users</h2>
{examples_section(report, videos, strips)}
</body></html>
"""


def unevaluated_html(report: dict) -> str:  # type: ignore[type-arg]
    """The page of a run that trained no model, or had nothing held out to measure it on: why, what
    the data held, what was served instead."""
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in report.get("dataset", {}).items())
    if report.get("no_model"):
        title, reason = "no model", report["no_model"]
        then = f"""The run went on without a model: features were computed and the publish step serves
the popular list (or, with no events at all, the newest videos) to every user. A model is trained on
the first night with events on both sides of the {_esc(report.get("protocol", ""))} split."""
    else:
        title, reason = f"model {_esc(report['model_version'])} not evaluated", report["no_evaluation"]
        then = """The model was trained and exported; with no metrics to compare, the publish step's
gate lets it out."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vidrec {_esc(report["run_date"])}: {title}</title></head>
<body><h1>vidrec evaluation {_esc(report["run_date"])}: {title}</h1>
<p id="reason">{_esc(reason)}</p>
<p>{then}</p>
<h2>Dataset</h2><table>{rows}</table></body></html>
"""


def write_html(cfg, run_date: str, report: dict) -> Path:  # type: ignore[no-untyped-def,type-arg]
    """Render the run's report.html from its report.json, the model folder and the ingest tables."""
    from pipelines import ingest, storage
    from pipelines.storage import atomic_write

    if report.get("no_model") or report.get("no_evaluation"):
        out = cfg.partition(run_date, "evaluate") / "report.html"
        atomic_write(out, lambda p: p.write_text(unevaluated_html(report), encoding="utf-8"))
        return out

    videos: dict[str, dict] = {}  # type: ignore[type-arg]
    try:
        table = ingest.load(cfg, run_date).videos
        videos = {r["video_id"]: r for r in table[["video_id", "title", "category", "media_file"]].to_dict("records")}
    except FileNotFoundError as exc:
        log.warning("report without titles and thumbnails: %s", exc)
    model_dir = cfg.model_dir(report["model_version"])
    item_vectors = (
        storage.load_npy(model_dir / "item_embeddings.npy") if (model_dir / "item_embeddings.npy").exists() else None
    )
    if item_vectors is not None and (model_dir / "scoring.json").exists():
        from recsys.scoring import ScoreLayout

        # only the item tower's embeddings (unit length): the rest are a bias and the fixed content prior
        layout = ScoreLayout.from_json(json.loads((model_dir / "scoring.json").read_text()))
        item_vectors = layout.similarity_vectors(item_vectors)
    items = json.loads((model_dir / "items.json").read_text()) if (model_dir / "items.json").exists() else []
    fusion = json.loads((model_dir / "fusion.json").read_text()) if (model_dir / "fusion.json").exists() else None
    ablation_path = cfg.workdir / "runs" / run_date / "ablation" / "report.json"
    ablation = json.loads(ablation_path.read_text()) if ablation_path.exists() else None
    page = render_html(report, videos, item_vectors, items, fusion, ablation, example_strips(cfg, model_dir, report))
    out = cfg.partition(run_date, "evaluate") / "report.html"
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out


def example_strips(cfg, model_dir: object, report: dict) -> dict[str, str]:  # type: ignore[no-untyped-def,type-arg]
    """The example users' videos' summary strips as JPEG data URIs, from the model folder's
    ``SUMMARIES_FILE`` and the strips under ``<workdir>/summaries/`` (a video without one: absent)."""
    from pipelines import storage
    from recsys.online import SUMMARIES_FILE

    path = storage.location(model_dir) / SUMMARIES_FILE
    if not path.exists():
        return {}
    summaries = json.loads(path.read_text())
    wanted = {v for e in report.get("examples") or [] for v in e["history"] + e["recommended"]}
    out = {}
    for vid in sorted(wanted):
        strip = cfg.workdir / "summaries" / str((summaries.get(vid) or {}).get("strip") or "")
        if (summaries.get(vid) or {}).get("strip") and strip.exists():
            out[vid] = _jpeg_uri(strip.read_bytes())
    return out


# ----------------------------------------------------------------------------- compare


def load_report(path: Path) -> dict:  # type: ignore[type-arg]
    from pipelines.storage import location

    path = location(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise FileNotFoundError(f"no report.json at {path}")
    return json.loads(path.read_text())


def compare(a: dict, b: dict) -> list[dict[str, object]]:  # type: ignore[type-arg]
    """Per model and metric: A, B, B - A, and whether the difference exceeds 2 standard errors."""
    rows = []
    for model in _models(a["metrics"]):
        if model not in b["metrics"]:
            continue
        ma, mb = a["metrics"][model], b["metrics"][model]
        for metric in [f"{m}@{k}" for k in K_VALUES for m in ("recall", "ndcg")] + [
            "hitrate@10",
            "mrr@10",
            "coverage@10",
        ]:
            if metric not in ma or metric not in mb:
                continue
            se = math.sqrt((ma.get(metric + "_se") or 0.0) ** 2 + (mb.get(metric + "_se") or 0.0) ** 2)
            diff = mb[metric] - ma[metric]
            rows.append(
                {"model": model, "metric": metric, "a": ma[metric], "b": mb[metric], "diff": diff,
                 "significant": bool(se > 0 and abs(diff) > 2 * se)}
            )  # fmt: skip
    return rows


def compare_html(a: dict, b: dict, label_a: str, label_b: str) -> str:  # type: ignore[type-arg]
    rows = compare(a, b)
    body = "".join(
        f"<tr><td>{_esc(r['model'])}</td><td>{_esc(r['metric'])}</td><td>{_fmt(r['a'])}</td><td>{_fmt(r['b'])}</td>"
        f'<td class="{("better" if r["diff"] > 0 else "worse") if r["significant"] else ""}">{r["diff"]:+.4f}'
        f"{' *' if r['significant'] else ''}</td></tr>"
        for r in rows
    )

    def describe(r: dict) -> str:  # type: ignore[type-arg]
        return (
            f"<code>{_esc(r['data_source'])}</code>, protocol {_esc(r['protocol'])}, model {_esc(r['model_version'])}, "
            f"{r['users_evaluated']} users"
        )

    warn = ""
    if (a["protocol"], a["data_source"]) != (b["protocol"], b["data_source"]):
        warn = "<p class='worse'>The two runs differ in data set or protocol: differences are not like for like.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vidrec: {_esc(label_a)} vs {_esc(label_b)}</title><style>{CSS}</style></head>
<body><h1>{_esc(label_a)} vs {_esc(label_b)}</h1>
<p>A: {describe(a)}<br>B: {describe(b)}</p>{warn}
<p class="muted">B - A; * and colour: the difference exceeds twice the standard error of the difference
(green: B better, red: B worse).</p>
<table><tr><th>model</th><th>metric</th><th>A</th><th>B</th><th>B - A</th></tr>{body}</table>
</body></html>
"""


def format_compare(rows: list[dict[str, object]]) -> str:
    lines = [f"{'model':<14}{'metric':<14}{'A':>10}{'B':>10}{'B-A':>10}"]
    for r in rows:
        mark = " *" if r["significant"] else ""
        lines.append(f"{r['model']:<14}{r['metric']:<14}{r['a']:>10.4f}{r['b']:>10.4f}{r['diff']:>+10.4f}{mark}")
    return "\n".join(lines)
