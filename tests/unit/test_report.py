"""The HTML report and the run comparison, rendered from report JSON (no browser here; the e2e
suite opens the real report in headless Chromium)."""

import numpy as np

from pipelines.report import compare, compare_html, format_compare, render_html


def _m(v: float, se: float = 0.01) -> dict:
    out = {"users": 10, "coverage@10": 0.5, "novelty@10": 9.0, "popularity@10": 12.0}
    for k in (10, 20, 50):
        for name in ("recall", "ndcg", "hitrate", "mrr"):
            out[f"{name}@{k}"], out[f"{name}@{k}_se"] = v, se
    return out


def _report(v: float, protocol: str = "user_time") -> dict:
    return {
        "run_date": "2026-11-28",
        "model_version": "20261128-abc",
        "data_source": "var/src",
        "protocol": protocol,
        "protocol_detail": "each user's last 20% of events by time are test",
        "train_events": 100,
        "test_events": 20,
        "users_evaluated": 10,
        "users_total": 12,
        "metrics": {"two_tower": _m(v), "popularity": _m(0.1)},
        "cohorts": {"cold_videos": {"two_tower": _m(0.05), "popularity": _m(0.0)}},
        "training": {
            "epochs_run": 3,
            "best_epoch": 2,
            "validation_users": 9,
            "loss": [9.0, 8.0, 7.5],
            "val_ndcg@10": [0.1, 0.3, 0.2],
        },
        "model_config": {"fusion": "weighted_sum"},
        "examples": [{"user_id": "u1", "history": ["a", "b"], "recommended": ["c", "a2"], "held_out": ["c"]}],
    }


def test_render_html_has_every_section():
    videos = {"a": {"title": "Alpha <b>", "category": "x", "media_file": ""}, "c": {"title": "Gamma", "category": "y"}}
    vectors = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    fusion = {"fusion": "weighted_sum", "mean_modality_weights": {"id": 0.4, "caption": 0.6}}
    ablation = {
        "rows": [
            {
                "fusion": "concat",
                "inputs": "id_only",
                "recall@10": 0.2,
                "ndcg@10": 0.1,
                "ndcg@10_se": 0.01,
                "cold_ndcg@10": None,
            }
        ]
    }
    page = render_html(_report(0.3), videos, vectors, ["a", "b", "c", "d"], fusion, ablation)
    for needle in ("var/src", "user_time", "Users evaluated: <b>10</b>", "Recall@K", "Ndcg@K", "cold_videos",
                   "Learned modality weights", "id_only", "PCA (n=4)", "Validation NDCG@10", "Alpha &lt;b&gt;"):  # fmt: skip
        assert needle in page, needle
    assert page.count("<svg") >= 7
    # the model's best cells are marked; the held-out video it found is outlined
    assert 'class="best"' in page and 'class="vid hit"' in page
    # a video with a summary strip is shown by it, the others by their thumbnail (or a blank)
    strip = "data:image/jpeg;base64,c3RyaXA="
    page = render_html(_report(0.3), videos, vectors, ["a", "b", "c", "d"], fusion, ablation, {"a": strip})
    assert f'<img class="summary" src="{strip}" alt="summary frames of Alpha &lt;b&gt;">' in page
    assert page.count('class="summary"') == 1  # "a" is in one list; "c" keeps its plain card


def test_compare_marks_significant_differences():
    a, b = _report(0.30), _report(0.40)
    rows = compare(a, b)
    tt = [r for r in rows if r["model"] == "two_tower" and r["metric"] == "ndcg@10"][0]
    assert tt["diff"] == 0.10000000000000003 or abs(tt["diff"] - 0.1) < 1e-12
    assert tt["significant"]  # 0.1 > 2 * sqrt(0.01^2 + 0.01^2)
    pop = [r for r in rows if r["model"] == "popularity" and r["metric"] == "ndcg@10"][0]
    assert not pop["significant"] and pop["diff"] == 0.0
    page = compare_html(a, b, "A", "B")
    assert 'class="better"' in page and "not like for like" not in page
    assert "not like for like" in compare_html(a, _report(0.4, protocol="global_time"), "A", "B")
    assert "+0.1000 *" in format_compare(rows)
