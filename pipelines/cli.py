"""``vidrec``: the command line for people without Airflow, and for the DAG's tasks.

Each step takes ``--source`` (a data-contract folder) and ``--workdir`` (where artifacts go) and
an explicit ``--run-date``; failures exit non-zero with a one-line reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_STATE = Path(os.environ.get("VIDREC_STATE_DIR", "var/state"))


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pipelines.options import build_config
    from pipelines.tune import parse_settings

    return build_config(vars(args), parse_settings(getattr(args, "set", None) or []))


def _step(name: str) -> Callable[[argparse.Namespace], object]:
    def run(args: argparse.Namespace) -> object:
        from pipelines.nightly import run_nightly

        names = {"features": ("frame_features", "text_features")}.get(name, (name,))
        out = {}
        for n in names:
            t0 = time.perf_counter()
            out.update(run_nightly(_config(args), args.run_date, (n,)))
            print(f"[vidrec] {n} done in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        return out

    return run


def cmd_train(args: argparse.Namespace) -> object:
    """The train step, in this process or on ``--workers`` local worker processes."""
    if args.workers <= 1:
        return _step("train")(args)
    from pipelines.distributed import train_on_workers

    return {"train": train_on_workers(_config(args), args.run_date, args.workers)}


def cmd_publish(args: argparse.Namespace) -> object:
    """The publish step; with --version a republish of an exported version, with --rollback a flip back."""
    from pipelines.dag_support import publish_named

    if args.version or args.rollback:
        params = {
            "version": args.version, "rollback": args.rollback, "source": args.source or ".",
            "workdir": args.workdir, "namespace": args.namespace, "redis_url": args.redis_url,
            "run_date": args.run_date,
        }  # fmt: skip
        return publish_named(params, None)
    if not args.source:
        raise SystemExit("vidrec publish: give --source (the run's data source), or --version V to republish")
    args.run_date = args.run_date or dt.date.today().isoformat()
    return _step("publish")(args)


def cmd_run(args: argparse.Namespace) -> object:
    from pipelines.config import STEPS
    from pipelines.nightly import run_nightly

    steps = tuple(s for s in STEPS if not (getattr(args, "no_publish", False) and s == "publish"))
    return run_nightly(_config(args), args.run_date, steps)


def cmd_results(args: argparse.Namespace) -> object:
    from pipelines.results import results

    only = [n for n in args.only.split(",") if n]
    return {"written": str(results(Path(args.var), Path(args.out), main, only, args.render_only))}


def cmd_demo_data(args: argparse.Namespace) -> object:
    from pipelines.demo_data import DemoConfig, write_demo_source

    cfg = DemoConfig(
        num_videos=args.videos, num_users=args.users, seed=args.seed, num_topics=args.topics, num_styles=args.styles
    )
    plan = write_demo_source(cfg, Path(args.out))
    return {"out": args.out, "videos": len(plan.videos), "comments": len(plan.comments), "events": len(plan.events)}


def cmd_ablate(args: argparse.Namespace) -> object:
    from pipelines.ablation import ABLATIONS, run_ablation

    inputs = tuple(args.inputs.split(",")) if args.inputs else ABLATIONS
    run_ablation(_config(args), args.run_date, tuple(args.fusions.split(",")), tuple(inputs))
    return None


def cmd_tune(args: argparse.Namespace) -> object:
    from pipelines.tune import parse_grid, run_tuning

    run_tuning(_config(args), args.run_date, parse_grid(args.grid))
    return None


def cmd_report_html(args: argparse.Namespace) -> object:
    from pipelines.config import PipelineConfig
    from pipelines.report import load_report, write_html

    cfg = PipelineConfig(source=Path(args.source), workdir=args.workdir)
    report = load_report(cfg.partition(args.run_date, "evaluate"))
    return {"written": str(write_html(cfg, args.run_date, report))}


def cmd_report_online(args: argparse.Namespace) -> object:
    from pipelines.config import PipelineConfig
    from pipelines.landing import online_report

    report = online_report(PipelineConfig(source=Path("."), workdir=args.workdir), args.since, args.until)
    print(f"{report['watches']} watches landed {args.since}..{args.until or 'latest'}")
    print(f"{'version':<22} {'recommended':>11} {'of watches':>10} {'rate':>7}  by source")
    for r in report["versions"]:
        print(f"{r['version']:<22} {r['recommended_watches']:>11} {r['watches_those_days']:>10} "
              f"{r['recommended_watch_rate']:>7.2%}  {r['by_source']}")  # fmt: skip
    return None


def cmd_report_compare(args: argparse.Namespace) -> object:
    from pipelines.report import compare, compare_html, format_compare, load_report

    a, b = load_report(Path(args.a)), load_report(Path(args.b))
    Path(args.out).write_text(compare_html(a, b, args.a, args.b), encoding="utf-8")
    print(format_compare(compare(a, b)))
    return {"written": args.out}


def cmd_import(args: argparse.Namespace) -> object:
    from pipelines.adapters import import_source, parse_mapping

    return import_source(args.format, Path(args.path), Path(args.source), parse_mapping(args.map), args.min_watch_ratio)


def cmd_redis(args: argparse.Namespace) -> object:
    from pipelines.redis_server import ensure_redis, stop_redis

    if args.action == "start":
        return {"started": ensure_redis(args.redis_url, Path(args.state_dir)), "url": args.redis_url}
    return {"stopped": stop_redis(args.redis_url, Path(args.state_dir))}


def cmd_serve(args: argparse.Namespace) -> object:
    import uvicorn

    from serving.http import uvicorn_options

    os.environ.setdefault("VIDREC_REDIS_URL", args.redis_url)
    os.environ.setdefault("VIDREC_NAMESPACE", args.namespace)
    # the benchmarked configuration (benchmarks/serving.py)
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        **uvicorn_options(),
    )
    return None


def cmd_fresh(args: argparse.Namespace) -> object:
    """Videos uploaded since the live version, scored and added to it (pipelines/fresh.py)."""
    from pipelines import fresh

    return fresh.run(_config(args), args.run_date)


def cmd_refresher(args: argparse.Namespace) -> object:
    """Refresh users' lists from their new watches until SIGTERM or Ctrl-C (pipelines/refresher.py)."""
    import signal
    import threading

    from pipelines.refresher import Refresher

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    refresher = Refresher(_config(args))
    try:
        return refresher.run(stop)
    except KeyboardInterrupt:
        return refresher.counts


def cmd_export_text_encoder(args: argparse.Namespace) -> object:
    """Export the caption encoder to ONNX once (the API's VIDREC_TEXT_ENCODER_DIR); prints its folder."""
    from recsys.text_onnx import export_text_onnx

    model_path = args.text_encoder.removeprefix("st:") if args.text_encoder.startswith("st:") else None
    if args.text_encoder not in ("all-minilm-l6-v2",) and model_path is None:
        raise ValueError(f"only sentence-transformers encoders export to ONNX, not {args.text_encoder!r}")
    return {"text_encoder_dir": str(export_text_onnx(model_path))}


def cmd_search(args: argparse.Namespace) -> object:
    """Text search over a model version (the live one in the namespace, or --version)."""
    from pipelines import storage
    from recsys.search import SearchIndex
    from recsys.text_onnx import OnnxTextEncoder, export_text_onnx

    version = args.version
    if version is None:
        from cache import keys
        from cache.writer import connect

        client = connect(args.redis_url)
        try:
            raw = client.get(keys.live_key(args.namespace))
        finally:
            client.close()
        if raw is None:
            raise ValueError(f"no live version in namespace {args.namespace!r}; give --version")
        version = raw.decode()
    folder = storage.location(args.workdir) / "models" / version
    index = SearchIndex(folder, OnnxTextEncoder(export_text_onnx()))
    hits = index.search(args.query, args.k, mode=args.mode)
    return {
        "query": args.query,
        "mode": args.mode,
        "model_version": version,
        "items": [[h.video_id, round(h.score, 4)] for h in hits],
    }


def cmd_search_eval(args: argparse.Namespace) -> object:
    """Topic and known-item search on the run date's model: semantic, BM25, hybrid."""
    from pipelines.search_eval import evaluate_search

    return evaluate_search(_config(args), args.run_date, args.topics)


def cmd_show(args: argparse.Namespace) -> object:
    """Fetch a user's recommendations over HTTP and print them with titles from the source."""
    import httpx
    import pandas as pd

    from pipelines.ingest import read_table

    resp = httpx.get(f"{args.api}/v1/users/{args.user}/recommendations", params={"k": args.k}, timeout=10)
    resp.raise_for_status()
    body = resp.json()
    videos = read_table(Path(args.source), "videos").set_index("video_id")
    titles = videos["title"].fillna("")
    category = videos["category"].fillna("") if "category" in videos else pd.Series(dtype=str)
    print(f"top {len(body['items'])} for {body['user_id']} (model {body['model_version']}, source {body['source']}):")
    for rank, item in enumerate(body["items"], 1):
        vid = item["video_id"]
        title = titles.get(vid, "") or "(no title)"
        print(f"{rank:>3}. {vid:<10} {item['score']:+.3f}  [{category.get(vid, '')}] {title}")
    return None


STEP_OPTIONS = (
    "source", "workdir", "namespace", "redis_url", "image_encoder", "image_runtime", "text_encoder", "strategy",
    "num_frames", "frames_per_second", "seek", "frame_shards", "summary_frames", "publish_shards", "fusion", "modalities",
    "user_pooling",
    "completion_weighting", "early_stopping_patience", "epochs", "temperature", "learning_rate", "max_history",
    "tune_seconds", "protocol", "land_events",
)  # fmt: skip


def _add_common(p: argparse.ArgumentParser, source_required: bool = True) -> None:
    from pipelines.options import add_cli_options

    add_cli_options(p, STEP_OPTIONS, source_required)
    p.add_argument("--run-date", default=dt.date.today().isoformat(), help="YYYY-MM-DD the run is keyed by")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="any model setting, e.g. use_user_id=false"
    )


def _add_data_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """demo-data and import: sources in the data contract."""
    p = sub.add_parser("demo-data", help="write the synthetic demo source (real video files)")
    p.add_argument("--out", required=True)
    p.add_argument("--videos", type=int, default=160)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--topics", type=int, default=8, help="what videos are about: told by their text")
    p.add_argument("--styles", type=int, default=4, help="how videos look: told by their frames")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("import", help="convert a public data set into a data-contract folder")
    p.add_argument("format", choices=("movielens", "movietweetings", "microlens", "kuairec", "csv"))
    p.add_argument("path", help="the data set's folder")
    p.add_argument("--source", required=True, help="the data-contract folder to write")
    p.add_argument("--map", action="append", default=[], help="csv: table.contract_column=source_column")
    p.add_argument(
        "--min-watch-ratio", type=float, default=1.0, help="kuairec: plays below this watch_ratio are not views"
    )
    p.set_defaults(func=cmd_import)


def _add_step_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """One command per nightly step (features runs both feature steps)."""
    for name, helptext in [
        ("ingest", "validate the source tables, quarantine bad rows"),
        ("features", "frame and text features"),
        ("dataset", "vocabularies, content arrays and the time split"),
        ("train", "train and export the two-tower model"),
        ("evaluate", "offline metrics for the model and baselines"),
        ("publish", "publish top-k lists to Redis and flip the live version"),
    ]:
        p = sub.add_parser(name, help=helptext)
        _add_common(p, source_required=name != "publish")
        p.set_defaults(func=_step(name))
        if name == "train":
            p.add_argument(
                "--workers",
                type=int,
                default=1,
                help="train on this many local worker processes (tf.distribute.MultiWorkerMirroredStrategy; "
                "settings as given, no automatic tuning)",
            )
            p.set_defaults(func=cmd_train)
        if name == "publish":
            p.add_argument(
                "--version",
                help="republish this exported version from <workdir>/models/<version> (ungated; e.g. after "
                "Redis lost its data), scoring the events of the run that exported it unless --run-date is given",
            )
            p.add_argument("--rollback", action="store_true", help="point live back at the previous version")
            p.set_defaults(func=cmd_publish, run_date=None)


def _add_experiment_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """run, results, ablate, tune, report: whole runs and comparisons."""
    from pipelines.options import add_cli_options

    p = sub.add_parser("fresh", help="score videos uploaded since the live version and add them to it")
    _add_common(p)
    p.set_defaults(func=cmd_fresh)

    p = sub.add_parser("run", help="the whole nightly flow in-process")
    _add_common(p)
    p.add_argument("--no-publish", action="store_true", help="stop after evaluate (nothing is written to Redis)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("results", help="run the reference experiments and write docs/results.md")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--var", default="var/results", help="where the experiments' sources and workdirs go")
    p.add_argument("--only", default="", help="comma-separated experiment names")
    p.add_argument("--render-only", action="store_true", help="re-render from reports already under --var")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("ablate", help="retrain with each set of item-tower inputs and compare")
    _add_common(p)
    p.add_argument("--fusions", default="concat", help="comma-separated: concat,weighted_sum,attention")
    p.add_argument("--inputs", default="", help="comma-separated input sets (default: the four modality sets; "
                   "also id+text+visual+sentiment)")  # fmt: skip
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("tune", help="grid search of model settings, judged on validation NDCG@10")
    _add_common(p)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="e.g. temperature=0.05,0.1,0.3")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("report", help="the evaluation report: re-render its HTML, or compare two runs")
    rsub = p.add_subparsers(dest="report_command", required=True)
    q = rsub.add_parser("html", help="(re)write runs/<date>/evaluate/report.html from its report.json")
    add_cli_options(q, ["workdir"])
    q.add_argument("--run-date", default=dt.date.today().isoformat())
    q.add_argument("--source", default=".", help="only for the config; titles come from the ingest partition")
    q.set_defaults(func=cmd_report_html)
    q = rsub.add_parser("online", help="watches of recommended videos by model version, from the landed events")
    add_cli_options(q, ["workdir"])
    q.add_argument("--since", required=True, help="first day, YYYY-MM-DD")
    q.add_argument("--until", default=None, help="last day, YYYY-MM-DD (default: the latest landed)")
    q.set_defaults(func=cmd_report_online)
    q = rsub.add_parser("compare", help="two runs side by side, differences highlighted")
    q.add_argument("a", help="report.json (or the evaluate folder holding it) of run A")
    q.add_argument("b", help="report.json (or the evaluate folder holding it) of run B")
    q.add_argument("--out", default="compare.html", help="HTML file to write")
    q.set_defaults(func=cmd_report_compare)


def _add_service_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """redis, serve, show: the serving side."""
    from pipelines.options import add_cli_options

    p = sub.add_parser("redis", help="start (if none answers) or stop the project's own Redis")
    p.add_argument("action", choices=("start", "stop"))
    add_cli_options(p, ["redis_url"])
    p.add_argument("--state-dir", default=str(DEFAULT_STATE))
    p.set_defaults(func=cmd_redis)

    p = sub.add_parser("serve", help="run the HTTP API in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="processes (one per core past what Redis needs)")
    add_cli_options(p, ["namespace"])
    add_cli_options(p, ["redis_url"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("refresher", help="refresh users' lists seconds after their new watches (runs until stopped)")
    add_cli_options(p, ["source", "workdir", "namespace", "redis_url"], source_required=False)
    p.set_defaults(func=cmd_refresher, set=[])

    p = sub.add_parser("search", help="videos matching a text query, from a model version's item space")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--version", default=None, help="a folder under <workdir>/models (default: the live version)")
    p.add_argument("--mode", choices=("semantic", "lexical", "hybrid"), default="semantic",
                   help="semantic: the model's item space; lexical: BM25; hybrid: both, fused")  # fmt: skip
    add_cli_options(p, ["workdir", "namespace", "redis_url"])
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("search-eval", help="measure search (topic and known-item queries) on a run's model")
    _add_common(p)
    p.add_argument("--topics", choices=("vocabulary", "name"), default="name",
                   help="topic queries: words of each category (vocabulary) or each genre's name")  # fmt: skip
    p.set_defaults(func=cmd_search_eval)

    p = sub.add_parser("export-text-encoder", help="export the caption encoder to ONNX for the API's search")
    add_cli_options(p, ["text_encoder"])
    p.set_defaults(func=cmd_export_text_encoder)

    p = sub.add_parser("show", help="fetch a user's list over HTTP and print it with titles")
    p.add_argument("--user", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--api", default="http://127.0.0.1:8000")
    p.add_argument("-k", type=int, default=10)
    p.set_defaults(func=cmd_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidrec", description="vidrec: video recommendations, raw video to served list"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_step_commands(sub)
    _add_experiment_commands(sub)
    _add_service_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's boundary: one line, non-zero exit
        if args.verbose:
            raise
        print(f"vidrec {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
