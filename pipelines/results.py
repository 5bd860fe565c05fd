"""The results page: run the reference experiments and write their tables to ``docs/results.md``.

    vidrec results [--only demo,ml-user-time,ml-global-time] [--render-only] [--out docs/results.md]

Each experiment is a list of ``vidrec`` commands (printed on the page exactly as run); the page
is rendered from the JSON reports those commands write, never typed by hand. ``--render-only``
re-renders from the reports already under ``--var``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MOVIELENS = Path(
    os.environ.get("VIDREC_MOVIELENS", Path(__file__).resolve().parents[2] / "shared/data/movielens-latest-small")
)
MOVIETWEETINGS = Path(
    os.environ.get("VIDREC_MOVIETWEETINGS", Path(__file__).resolve().parents[2] / "shared/data/movietweetings-100k")
)
RUN_DATE = "2026-11-28"
METRIC_COLUMNS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50", "hitrate@10", "mrr@10")
BEYOND_COLUMNS = ("coverage@10", "novelty@10", "popularity@10")


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    about: str
    commands: list[list[str]]
    reports: dict[str, str] = field(default_factory=dict)
    """Label -> report path (relative to var) copied after the command at the same index runs."""


DATASETS = {
    "demo": (
        "Demo source (synthetic catalogue, real video files)",
        "`vidrec demo-data`: 160 rendered mp4 clips, each with a topic (8, told only by its text) and a "
        "style (4, told only by its frames), drawn independently; uploads all along, views leaning to fresh "
        "uploads; 300 users with a taste for both watching over 8 weeks (plus a corrupt and a missing file and "
        "malformed events, which are quarantined).",
    ),
    "ml": (
        "MovieLens latest-small",
        "`../shared/data/movielens-latest-small` (100,836 ratings, 610 users, 9,742 movies, with tags): movies "
        "are text-only videos (title + genres as caption, tags as comments), every rating a view with "
        "completion = rating / 5. Dense: every user has at least 20 ratings.",
    ),
    "mt": (
        "MovieTweetings 100K",
        "`../shared/data/movietweetings-100k` (100,000 ratings tweeted from IMDb, Feb-Sep 2013, 16,554 users, "
        "10,506 movies): text-only videos (title, genres); every rating a view with completion = rating / 10. "
        "Sparse and cold-heavy like short-video logs: the median user has 2 ratings, a quarter of the test "
        "movies under the global split have no training event.",
    ),
}
PROTOCOL_TITLES = {"user_time": "per-user time split", "global_time": "global time split"}


SENTIMENT = "id+text+visual+sentiment"


def experiments(var: Path) -> list[Experiment]:
    """One experiment per development set and protocol: the source, then ``vidrec run`` (tuning on
    validation within the configured budget, training, evaluation against every baseline); the demo
    under global_time adds the modality ablation of the chosen settings, and it and MovieLens under
    user_time the comment sentiment as an extra item input."""
    from pipelines.ablation import ABLATIONS

    common = ["--run-date", RUN_DATE, "--namespace", "results"]
    sources = {
        "demo": ["demo-data", "--out", str(var / "demo-source")],
        "ml": ["import", "movielens", str(MOVIELENS), "--source", str(var / "ml-source")],
        "mt": ["import", "movietweetings", str(MOVIETWEETINGS), "--source", str(var / "mt-source")],
    }
    out = []
    for data in ("demo", "ml", "mt"):
        for protocol in ("user_time", "global_time"):
            name = f"{data}-{protocol.replace('_', '-')}"
            flags = [
                "--source",
                str(var / f"{data}-source"),
                "--workdir",
                str(var / f"{data}-work"),
                *common,
                "--protocol",
                protocol,
            ]
            commands = [sources[data], ["run", "--no-publish", *flags]]
            if data == "demo" and protocol == "global_time":
                commands.append(["ablate", *flags, "--inputs", ",".join([*ABLATIONS, SENTIMENT]), "{tuned}"])
            if data == "ml" and protocol == "user_time":  # tags as comments: does their sentiment help?
                # against the run's own model (same settings; its inputs need no second training)
                commands.append(["ablate", *flags, "--inputs", SENTIMENT, "{tuned}"])
            if protocol == "user_time":  # search on the model of this run (its catalogue, no held-out data)
                commands.append(["search-eval", *flags, "--topics", "vocabulary" if data == "demo" else "name"])
            title, about = DATASETS[data]
            out.append(
                Experiment(
                    name=name,
                    title=f"{title}, {PROTOCOL_TITLES[protocol]}",
                    about=about,
                    commands=commands,
                    reports={"1": "tuned on validation"},
                )
            )
    return out


def _workdir(cmd: list[str]) -> Path | None:
    return Path(cmd[cmd.index("--workdir") + 1]) if "--workdir" in cmd else None


def run_experiment(exp: Experiment, var: Path, vidrec: Callable[[list[str]], int]) -> None:
    """Run the experiment's commands through ``vidrec`` (the CLI's ``main``: argv -> exit code)."""
    out = var / "reports" / exp.name
    out.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, object]] = []
    tuned: list[str] = []
    for i, template in enumerate(exp.commands):
        cmd = [a for t in template for a in (tuned if t == "{tuned}" else [t])]
        t0 = time.perf_counter()
        log.info("results %s: vidrec %s", exp.name, shlex.join(cmd))
        if vidrec(cmd) != 0:
            raise RuntimeError(f"experiment {exp.name}: `vidrec {shlex.join(cmd)}` failed")
        done.append({"command": "vidrec " + shlex.join(cmd), "seconds": round(time.perf_counter() - t0, 1)})
        # written after every command, so an interrupted experiment still renders what it ran
        (out / "commands.json").write_text(json.dumps(done, indent=2))
        work = _workdir(cmd)
        if cmd[0] == "run" and work is not None:
            chosen = (
                json.loads((work / "runs" / RUN_DATE / "train" / "model.json").read_text()).get("tuning") or {}
            ).get("chosen") or {}
            # the ablation retrains with the settings tuning chose (it sets the inputs itself)
            tuned = ["--tune-seconds", "0"] + [
                a for k, v in chosen.items() if k != "modalities" for a in ("--set", f"{k}={v}")
            ]
        if cmd[0] == "tune" and work is not None:
            best = json.loads((work / "tuning" / f"{RUN_DATE}-{cmd[cmd.index('--protocol') + 1]}.json").read_text())
            tuned = shlex.split(best["train_flags"])
            (out / "tuning.json").write_text(json.dumps(best, indent=2))
        if cmd[0] == "search-eval" and work is not None:
            (out / "search.json").write_text((work / "runs" / RUN_DATE / "evaluate" / "search.json").read_text())
        if cmd[0] == "ablate" and work is not None:
            (out / "ablation.json").write_text((work / "runs" / RUN_DATE / "ablation" / "report.json").read_text())
        label = exp.reports.get(str(i))
        if label and work is not None:
            (out / f"report-{label}.json").write_text(
                (work / "runs" / RUN_DATE / "evaluate" / "report.json").read_text()
            )
    (out / "commands.json").write_text(json.dumps(done, indent=2))


def _cell(m: dict[str, float], key: str) -> str:
    value = m.get(key)
    if value is None:
        return ""
    se = m.get(f"{key}_se")
    return f"{value:.4f} ± {se:.4f}" if se is not None else f"{value:.4f}"


def _metrics_table(report: dict, order: list[str]) -> list[str]:  # type: ignore[type-arg]
    metrics = report["metrics"]
    names = [n for n in order if n in metrics] + sorted(n for n in metrics if n not in order)
    best = {c: max(metrics[n][c] for n in names) for c in METRIC_COLUMNS}
    lines = [
        "| model | " + " | ".join(METRIC_COLUMNS + BEYOND_COLUMNS) + " |",
        "|---" * (1 + len(METRIC_COLUMNS) + len(BEYOND_COLUMNS)) + "|",
    ]
    for n in names:
        m = metrics[n]
        cells = [f"**{_cell(m, c)}**" if m[c] == best[c] else _cell(m, c) for c in METRIC_COLUMNS]
        cells += [f"{m[c]:.3f}" if c != "popularity@10" else f"{m[c]:.1f}" for c in BEYOND_COLUMNS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def _tuning_lines(tuning: dict) -> list[str]:  # type: ignore[type-arg]
    """The sentence on the settings ``vidrec run`` chose itself (empty without tuning trials)."""
    if not tuning.get("trials"):
        return []

    def vs(r: dict) -> str:  # type: ignore[type-arg]
        p, q = r.get("vs_defaults"), r.get("vs_defaults_new_videos")
        out = f", vs defaults [{p['lo']:+.4f}, {p['hi']:+.4f}]" if p else ""
        return out + (f", on new videos [{q['lo']:+.4f}, {q['hi']:+.4f}]" if q else "")

    tried = "; ".join(
        f"{_setting(r['setting'])}: {r['val_ndcg@10']:.4f} (best epoch {r['best_epoch']}, {r['seconds']:.0f} s{vs(r)})"
        for r in tuning["trials"]
    )
    rule = f" ({tuning['rule']})" if tuning.get("rule") else ""
    return [
        f"Settings chosen by `vidrec run` itself on validation NDCG@10 within a {tuning['budget_seconds']:.0f} s "
        f"budget ({tuning['seconds']:.0f} s spent){rule}: **{_setting(tuning['chosen'])}**. Tried: {tried}."
    ]


def _prior_weight_lines(tuning: dict) -> list[str]:  # type: ignore[type-arg]
    """The sentence on the content prior's weight (``choose_prior_weight``)."""
    pw = tuning.get("prior_weight") or {}
    if not pw.get("rows"):
        return []

    def row(r: dict) -> str:  # type: ignore[type-arg]
        new = r.get("val_new_videos_ndcg@10")
        return f"x{r['setting']['prior_weight_factor']:g}: {r['val_ndcg@10']:.4f}" + (
            f" (new videos {new:.4f})" if new is not None else ""
        )

    return [
        f"Content prior's weight: **x{pw['chosen']:g}** of the {pw['learned_weight']:.2f} training learned, chosen on "
        f"validation NDCG@10 ({pw['rule']}): " + "; ".join(row(r) for r in pw["rows"]) + "."
    ]


def _new_video_lines(tuning: dict) -> list[str]:  # type: ignore[type-arg]
    """The sentence on how videos without training events are scored (``choose_new_video_scoring``)."""
    nv = tuning.get("new_videos") or {}
    if not nv.get("chosen"):
        return []
    chosen = _setting(nv["chosen"])
    if not nv.get("rows"):
        return [f"Videos without training events scored with {chosen} ({nv.get('reason', 'not chosen')})."]
    pick = next(r for r in nv["rows"] if all(r[k] == v for k, v in nv["chosen"].items()))
    return [
        f"Videos without training events scored with **{chosen}**, chosen of {len(nv['rows'])} settings on "
        f"validation ({nv['validation_users_new_videos']} of {nv['validation_users']} users watched such a video; "
        f"{nv['rule']}): validation NDCG@10 {pick['val_ndcg@10']:.4f} vs {nv['rows'][0]['val_ndcg@10']:.4f} for the "
        f"tower as it is, on new videos {pick['val_new_videos_ndcg@10']:.4f} vs {nv['rows'][0]['val_new_videos_ndcg@10']:.4f}"
        f" (content_only {nv['content_only_val_new_videos_ndcg@10']:.4f})."
    ]


def render_report(label: str, report: dict) -> list[str]:  # type: ignore[type-arg]
    lines = [
        f"#### Model: {label} (version `{report['model_version']}`)",
        "",
        f"Protocol `{report['protocol']}`: {report['protocol_detail']}. Users evaluated: "
        f"{report['users_evaluated']} of {report['users_total']} (users with training events and at least one "
        f"unseen test video). Train events {report['train_events']}, test events {report['test_events']}. "
        "Each cell is the mean over evaluated users ± its standard error; the best mean per column is bold.",
        "",
        *_metrics_table(report, ["two_tower", "als", "item_knn", "popularity", "content_only"]),
        "",
    ]
    t = report.get("training") or {}
    mc = report.get("model_config") or {}
    if mc:
        keys = ("fusion", "modalities", "user_pooling", "temperature", "use_user_id", "max_history", "epochs")
        lines.append("two_tower settings: " + ", ".join(f"{k}={mc.get(k)}" for k in keys if k in mc) + ".")
    if t.get("val_ndcg@10"):
        lines.append(
            f"Early stopping: {t['epochs_run']} epochs run, best epoch {t['best_epoch']} by NDCG@10 on "
            f"{t['validation_users']} users' held-out training events "
            f"({', '.join(f'{v:.3f}' for v in t['val_ndcg@10'])})"
            + (f"; then refit on all training events for {t['refit_epochs']} epochs." if t.get("refit_epochs") else ".")
        )
    als = (report.get("baseline_tuning") or {}).get("als")
    if als and als.get("grid"):
        lines.append(
            f"ALS: factors={als['factors']}, regularization={als['regularization']}, chosen from "
            f"{len(als['grid'])} settings by NDCG@10 on the same kind of validation split (never on test)."
        )
    lines += _tuning_lines(report.get("tuning") or {})
    lines += _prior_weight_lines(report.get("tuning") or {})
    lines += _new_video_lines(report.get("tuning") or {})
    for label, p in (report.get("paired") or {}).items():
        lines.append(
            f"Paired, {'all evaluated users' if label == 'all' else label} ({p['users']} users): two_tower minus "
            f"{p['baseline']} (the best baseline there), per-user NDCG@10 difference {p['mean_diff']:+.4f}, "
            f"95% bootstrap interval [{p['lo']:+.4f}, {p['hi']:+.4f}] ({p['resamples']} resamples of users)."
        )
    cohorts = report.get("cohorts") or {}
    if cohorts:
        models = list(next(iter(cohorts.values())).keys())
        lines += ["", "Cohorts, NDCG@10 ± standard error:", ""]
        lines.append("| cohort | users | " + " | ".join(models) + " |")
        lines.append("|---" * (2 + len(models)) + "|")
        for name, by_model in cohorts.items():
            n = next(iter(by_model.values()))["users"]
            lines.append(f"| {name} | {n} | " + " | ".join(_cell(by_model[m], "ndcg@10") for m in models) + " |")
        lines += [
            "",
            "cold_videos: only test videos with no training event count as relevant; light/heavy users: bottom/"
            "top third of evaluated users by training events; video_age*: only test videos of that age at the "
            "time of the watch count (age from publication, else from the video's first event); new_users: "
            "users with no training event and two or more test events, given their first test watch as "
            "history and judged on the rest, each model answering as it can from one watch (two_tower: the "
            "item-to-item path the API uses for users it never saw; als has no vector for them and serves "
            "popularity).",
        ]
        bands = report.get("sentiment_videos") or {}
        if any(k.startswith("sentiment_") for k in cohorts) and bands:
            lines += [
                "",
                "sentiment_*: only test videos whose comments' VADER sentiment (`text_features`, weighted like "
                "the comments embedding) is negative (< -0.05), neutral or positive (> 0.05) count; videos in each "
                "band: " + ", ".join(f"{k} {v}" for k, v in bands.items()) + ".",
            ]
    return [*lines, ""]


def _setting(setting: dict) -> str:  # type: ignore[type-arg]
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "the defaults"


def summary_table(var: Path, names: list[str]) -> list[str]:
    """One row per experiment: the model against the best baseline, overall and on new videos."""
    rows = []
    for exp in experiments(var):
        path = var / "reports" / exp.name / "report-tuned on validation.json"
        if exp.name not in names or not path.exists():
            continue
        r = json.loads(path.read_text())
        m = r["metrics"]
        base = max((n for n in m if n != "two_tower"), key=lambda n: m[n]["ndcg@10"])
        p = (r.get("paired") or {}).get("all") or {}
        cold = (r.get("cohorts") or {}).get("cold_videos") or {}
        pc = (r.get("paired") or {}).get("cold_videos") or {}
        commands = var / "reports" / exp.name / "commands.json"
        secs = (
            next(
                (c["seconds"] for c in json.loads(commands.read_text()) if c["command"].startswith("vidrec run")), None
            )
            if commands.exists()
            else None
        )
        cold_cells = (
            f"{cold['two_tower']['ndcg@10']:.4f} vs {cold['content_only']['ndcg@10']:.4f} "
            f"[{pc.get('lo', float('nan')):+.4f}, {pc.get('hi', float('nan')):+.4f}] ({cold['two_tower']['users']})"
            if cold.get("two_tower") and cold.get("content_only")
            else "no cold test videos"
        )
        rows.append(
            f"| {exp.title} | {r['users_evaluated']} | {m['two_tower']['ndcg@10']:.4f} ± {m['two_tower']['ndcg@10_se']:.4f} "
            f"| {base} {m[base]['ndcg@10']:.4f} | x{m['two_tower']['ndcg@10'] / max(m[base]['ndcg@10'], 1e-12):.2f} "
            f"| [{p.get('lo', float('nan')):+.4f}, {p.get('hi', float('nan')):+.4f}] | {cold_cells} "
            f"| {'' if secs is None else f'{secs:.0f} s'} |"
        )
    if not rows:
        return []
    return [
        "## Summary",
        "",
        "NDCG@10 on held-out events; the best baseline is the best of popularity, item_knn, ALS and content_only in "
        "the same run; the interval is the 95% paired bootstrap interval of the per-user difference (two_tower "
        "minus that baseline). Cold videos: only test videos with no training event count as relevant; "
        "two_tower vs content_only, the paired interval of their difference and the users counted. The time is "
        "the whole `vidrec run --no-publish` (ingest, features, dataset, tuning, training, evaluation with every "
        "baseline).",
        "",
        "| data set, protocol | users | two_tower | best baseline | ratio | paired 95% interval | cold videos: two_tower vs content_only | run time |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


RUN_MODEL = " (the run's model)"


def run_row(report: dict) -> dict:  # type: ignore[type-arg]
    """The run's own model as a row of its ablation table (the ablation retrains other input sets
    with the same settings; the run's set need not be trained twice)."""
    from pipelines.ablation import ABLATIONS

    mc = report.get("model_config") or {}
    modalities = tuple(mc.get("modalities") or ())
    names = [n for n, m in ABLATIONS.items() if set(m) == set(modalities)]
    m = report["metrics"]["two_tower"]
    return {
        "fusion": mc.get("fusion", ""),
        "inputs": (names[0] if names else "+".join(modalities)) + RUN_MODEL,
        **{k: m[k] for k in ("recall@10", "recall@10_se", "ndcg@10", "ndcg@10_se")},
        "cold_ndcg@10": (report.get("cohorts") or {}).get("cold_videos", {}).get("two_tower", {}).get("ndcg@10"),
        "fusion_weights": None,
    }


def render_ablation(ab: dict, run_report: dict | None = None) -> list[str]:  # type: ignore[type-arg]
    """The ablation table; ``run_report``: the run's report, its model first when the ablation did
    not train the run's input set itself."""
    rows = list(ab["rows"])
    own = run_row(run_report) if run_report is not None else None
    if own is not None and own["inputs"].removesuffix(RUN_MODEL) not in {r["inputs"] for r in rows}:
        rows.insert(0, own)
    lines = [
        f"#### Input ablation (protocol `{ab['protocol']}`; the settings chosen by tuning, each input set trained "
        "once; visual absent where the data has no video files)",
        "",
        "| fusion | item-tower inputs | recall@10 | ndcg@10 | cold-video ndcg@10 | learned modality weights |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cold = "" if r["cold_ndcg@10"] is None else f"{r['cold_ndcg@10']:.4f}"
        w = r.get("fusion_weights")
        weights = ", ".join(f"{k} {v:.2f}" for k, v in w.items()) if w else ""
        lines.append(
            f"| {r['fusion']} | {r['inputs']} | {_cell(r, 'recall@10')} | {_cell(r, 'ndcg@10')} | {cold} | {weights} |"
        )
    return [*lines, ""]


def render_search(se: dict) -> list[str]:  # type: ignore[type-arg]
    """The search tables of one data set (``pipelines.search_eval``)."""
    topic, known = se["topic"], se["known_item"]
    how = (
        "2 words of the topic's 10 most distinctive words, relevant = the topic's videos"
        if se["topic_style"] == "vocabulary"
        else "a genre's name, relevant = the videos of that genre"
    )
    lines = [
        f"#### Search (model `{se['model_version']}`, {se['videos']} videos)",
        "",
        f"Topic queries ({topic['queries']}: {how}; e.g. {', '.join(repr(q) for q in topic['examples'])}) and "
        f"known-item queries ({known['queries']}: a title with a word dropped and one misspelt, relevant = that "
        f"video; e.g. {', '.join(repr(q) for q in known['examples'])}). semantic: `GET /v1/search` (the item tower "
        "and the caption prior, alpha 0.8); bm25: `bm25s` over title, description and tags; hybrid: "
        "reciprocal-rank fusion of their top 100. `vidrec search-eval`.",
        "",
        "| method | topic precision@10 | topic ndcg@10 | known-item mrr@10 |",
        "|---|---|---|---|",
    ]
    for m in ("semantic", "bm25", "hybrid"):
        lines.append(
            f"| {m} | {_cell(topic[m], 'p@10')} | {_cell(topic[m], 'ndcg@10')} | {_cell(known[m], 'mrr@10')} |"
        )
    return [*lines, ""]


def render_tuning(tu: dict) -> list[str]:  # type: ignore[type-arg]
    lines = [
        "#### Tuning on validation data",
        "",
        f"Judged on {tu['judged_on']}; the test split is not looked at.",
        "",
        "| setting | validation ndcg@10 | best epoch |",
        "|---|---|---|",
    ]
    for r in sorted(tu["rows"], key=lambda r: -r["val_ndcg@10"]):
        setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
        lines.append(f"| {setting} | {r['val_ndcg@10']:.4f} | {r['best_epoch']} |")
    return [*lines, "", f"Best: `{tu['train_flags']}`.", ""]


def render(var: Path, names: list[str]) -> str:
    lines = [
        "# vidrec offline results",
        "",
        f"Generated by `make results` (`vidrec results`) on {dt.date.today().isoformat()}, "
        f"{platform.machine()} CPU ({os.cpu_count()} cores), no GPU. Every number below comes from held-out "
        "data; do not edit this file by hand, rerun the command.",
        "",
        "Baselines go through the same ranking and metric code as the model: popularity (training watch count), "
        "item_knn (item-item cosine over the binary user x item matrix), als (`implicit`, tuned on validation), "
        "content_only (user profile = mean of watched items' content vectors: each modality's pretrained "
        "embedding L2-normalised and centred on the catalogue's mean, concatenated). Metric definitions: "
        "`recsys/metrics.py`.",
        "",
        *summary_table(var, names),
    ]
    total = sum(
        c["seconds"]
        for exp in experiments(var)
        if (var / "reports" / exp.name / "commands.json").exists()
        for c in json.loads((var / "reports" / exp.name / "commands.json").read_text())
    )
    if total:
        lines += [f"All commands below together took {total / 60:.1f} min on this machine.", ""]
    for exp in experiments(var):
        if exp.name not in names:
            continue
        out = var / "reports" / exp.name
        if (out / "commands.json").exists():
            ran = [f"{c['command']}    # {c['seconds']} s" for c in json.loads((out / "commands.json").read_text())]
            heading = "Commands, as run:"
        else:
            # An interrupted experiment: the commands that produced the reports present, as defined
            # in this module (their timings were not recorded).
            done = [int(i) for i, label in exp.reports.items() if (out / f"report-{label}.json").exists()]
            if not done:
                continue
            ran = ["vidrec " + shlex.join(c) for c in exp.commands[: max(done) + 1]]
            heading = "Commands run (the experiment was interrupted after these; timings not recorded):"
        lines += [f"## {exp.title}", "", exp.about, "", heading, "", "```", *ran, "```", ""]
        for label in exp.reports.values():
            path = out / f"report-{label}.json"
            if path.exists():
                lines += render_report(label, json.loads(path.read_text()))
        if (out / "tuning.json").exists():
            lines += render_tuning(json.loads((out / "tuning.json").read_text()))
        if (out / "ablation.json").exists():
            first = out / f"report-{next(iter(exp.reports.values()))}.json"
            run_report = json.loads(first.read_text()) if first.exists() else None
            lines += render_ablation(json.loads((out / "ablation.json").read_text()), run_report)
        if (out / "search.json").exists():
            lines += render_search(json.loads((out / "search.json").read_text()))
    return "\n".join(lines).rstrip() + "\n"


def results(
    var: Path,
    out: Path,
    vidrec: Callable[[list[str]], int],
    only: list[str] | None = None,
    render_only: bool = False,
) -> Path:
    """Run the reference experiments (``only`` those named) through ``vidrec`` and write ``out``."""
    names = only or [e.name for e in experiments(var)]
    unknown = set(names) - {e.name for e in experiments(var)}
    if unknown:
        raise ValueError(f"unknown experiment(s) {sorted(unknown)}; choose from {[e.name for e in experiments(var)]}")
    if not render_only:
        for exp in experiments(var):
            if exp.name in names:
                run_experiment(exp, var, vidrec)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(var, [e.name for e in experiments(var)]))
    return out
