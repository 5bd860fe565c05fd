"""One whole nightly run on a generated demo source, then the API serving what it published."""

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from pipelines import frame_features, ingest
from pipelines.config import PipelineConfig
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow


def test_two_tower_beats_popularity_on_held_out_window(pipeline_run):
    cfg, summaries = pipeline_run
    report = summaries["evaluate"]
    assert report["protocol"] == "global_time" and report["users_evaluated"] >= 100
    tt, pop = report["metrics"]["two_tower"], report["metrics"]["popularity"]
    print(json.dumps(report["metrics"], indent=1))
    # The demo's users concentrate on one or two of 8 topics, so a model that reads their
    # history must clearly beat a global popularity list. Margin: at least 1.5x and at least
    # 4 standard errors of the difference above popularity.
    assert tt["recall@10"] >= 1.5 * pop["recall@10"]
    assert tt["recall@10"] - pop["recall@10"] > 4 * np.hypot(tt["recall@10_se"], pop["recall@10_se"])
    assert tt["ndcg@10"] > pop["ndcg@10"]


def test_bad_inputs_quarantined_and_run_goes_on(pipeline_run):
    cfg, summaries = pipeline_run
    assert summaries["ingest"]["quarantined[unknown video_id]"] == 1
    assert summaries["ingest"]["quarantined[invalid user_id]"] == 1
    assert summaries["ingest"]["quarantined[unparseable ts]"] == 1
    q = frame_features.load_quarantine(cfg, RUN_DATE).set_index("video_id")["reason"].to_dict()
    assert q == {"v_corrupt": "cannot open video", "v_missing": "missing file"}
    # The quarantined videos still have text features and are in the item vocabulary...
    assert summaries["dataset"]["items"] == 98  # 96 generated + 2 with bad files
    # ...but an unplayable video is never published.
    import redis

    from cache import keys

    client = redis.Redis.from_url(cfg.redis_url)
    version = client.get(keys.live_key(cfg.namespace)).decode()
    listed = {
        v
        for key in client.scan_iter(match=f"{keys.version_prefix(cfg.namespace, version)}:u:*")
        for v, _ in keys.decode_items(client.get(key))
    }
    client.close()
    assert listed and not listed & {"v_corrupt", "v_missing"}


def test_served_lists_exclude_watched_videos(pipeline_run):
    cfg, summaries = pipeline_run
    events = ingest.load(cfg, RUN_DATE).events
    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace)
    with TestClient(create_app(settings)) as c:
        for user in ["u00000", "u00007", "u00042"]:
            body = c.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()
            assert body["source"] == "cache" and body["model_version"] == summaries["train"]["version"]
            assert len(body["items"]) == 20
            watched = set(events.loc[events["user_id"] == user, "video_id"])
            assert not watched & {i["video_id"] for i in body["items"]}
            scores = [i["score"] for i in body["items"]]
            assert scores == sorted(scores, reverse=True)
        assert c.get("/v1/users/nobody-new/recommendations").json()["source"] == "popular"


def test_new_user_is_scored_online_from_posted_watches(pipeline_run):
    """Newcomers (one per topic x style cell of the demo) post the cell's videos as watched: their
    online answers share the cell's topic or style more often than chance and than the popular
    list, averaged over the cells (one cell's 3 videos are too few to judge alone)."""
    from pipelines.demo_data import DemoConfig, plan_demo_source
    from tests.conftest import DEMO

    cfg, summaries = pipeline_run
    specs = {s.video_id: s for s in plan_demo_source(DemoConfig(**DEMO)).specs}
    cells = sorted({(s.topic, s.style) for s in specs.values()})
    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace, model_root=str(cfg.workdir / "models"))
    online_fit, popular_fit, similar_fit = [], [], []
    with TestClient(create_app(settings)) as c:
        popular = [i["video_id"] for i in c.get("/v1/users/newcomer/recommendations", params={"k": 10}).json()["items"]]
        for n, cell in enumerate(cells):
            watched = [v for v, s in specs.items() if (s.topic, s.style) == cell]
            user = f"newcomer-{n}"
            events = [{"user_id": user, "video_id": v, "completion": 1.0} for v in watched]
            assert c.post("/v1/events", json={"events": events}).status_code == 202
            body = c.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
            assert body["source"] == "online" and body["model_version"] == summaries["train"]["version"]
            online = [i["video_id"] for i in body["items"]]
            assert len(online) == 10 and not set(online) & set(watched)
            similar = c.get(f"/v1/videos/{watched[0]}/similar", params={"k": 10}).json()
            assert similar["source"] == "similar" and watched[0] not in {i["video_id"] for i in similar["items"]}

            def fits(ids: list[str], cell: tuple[int, int] = cell) -> float:
                return float(
                    np.mean([v in specs and (specs[v].topic == cell[0] or specs[v].style == cell[1]) for v in ids])
                )

            online_fit.append(fits(online))
            popular_fit.append(fits(popular))
            similar_fit.append(fits([i["video_id"] for i in similar["items"]]))
    chance = 1 / 8 + 1 / 4 - 1 / 32  # same topic (8) or same style (4)
    result = (np.mean(online_fit), np.mean(popular_fit), np.mean(similar_fit))
    assert result[0] > chance + 0.05 and result[0] > result[1] + 0.05, result
    assert result[2] > chance + 0.05, result


def test_rerun_is_idempotent_and_incremental(pipeline_run):
    cfg, summaries = pipeline_run
    before = pd.read_parquet(cfg.partition(RUN_DATE, "frame_features") / "frame_features.parquet")
    again = frame_features.run(cfg, RUN_DATE)
    after = pd.read_parquet(cfg.partition(RUN_DATE, "frame_features") / "frame_features.parquet")
    assert again["frames_decoded"] == 0 and again["embedded"] == 0
    assert again["skipped_unchanged"] == summaries["frame_features"]["embedded"]
    pd.testing.assert_frame_equal(before, after)
    from pipelines import text_features

    text_again = text_features.run(cfg, RUN_DATE)
    assert text_again["texts_encoded"] == 0 and text_again["texts_from_cache"] > 0
    first = pd.read_parquet(cfg.partition(RUN_DATE, "ingest") / "events.parquet")
    ingest.run(cfg, RUN_DATE)
    pd.testing.assert_frame_equal(first, pd.read_parquet(cfg.partition(RUN_DATE, "ingest") / "events.parquet"))


def test_exported_model_reloads_with_same_scores(pipeline_run):
    from pipelines import artifacts

    cfg, _ = pipeline_run
    a = artifacts.load_model(cfg, RUN_DATE)
    b = artifacts.load_model(cfg, RUN_DATE)
    hist = np.full((3, a.config.max_history), len(a.items), np.int32)
    hist[:, -1] = [0, 1, 2]
    users = np.array([0, 1, 2], np.int32)
    np.testing.assert_array_equal(a.user_tower(hist, users), b.user_tower(hist, users))
    # the item side of the score: embedding, bias column, content prior (recsys.scoring.ScoreLayout)
    assert a.item_vectors.shape == (len(a.items), a.layout.total)
    # several tuning trials served as one put their embedding columns side by side (recsys.model.ensemble)
    members = len(json.loads((a.path / "tuning.json").read_text()).get("ensemble", {}).get("members") or [{}])
    assert a.layout.total == members * a.config.embedding_dim + 1 + a.config.content_prior_dim
    assert a.layout.freshness is not None and a.reference_ts is not None
    # the numpy tower (the API's online scoring) gives the exported tower's vectors
    from recsys.online import NUMPY_TOWER_FILE, NumpyUserTower

    tower = NumpyUserTower(a.path / NUMPY_TOWER_FILE, a.item_vectors)
    np.testing.assert_allclose(tower(hist, None, users), a.user_tower(hist, users), atol=1e-4)


def test_training_chose_its_settings_on_validation(pipeline_run):
    """`vidrec run` tunes by itself within the budget and records the choice in the model folder
    and the report."""
    import json

    from pipelines import artifacts
    from pipelines.fitting import AUTO_CANDIDATES

    cfg, summaries = pipeline_run
    tuning = summaries["train"]["tuning"]
    assert tuning["trials"] and tuning["trials"][0]["setting"] == {}  # the configured settings first
    assert all(r["val_ndcg@10"] >= 0 for r in tuning["trials"])
    assert len(tuning["trials"]) <= len(AUTO_CANDIDATES)
    from pipelines.fitting import choose_trial

    assert tuning["chosen"] == choose_trial(tuning["trials"])["setting"]
    assert all("vs_defaults" in r for r in tuning["trials"][1:])
    model = artifacts.load_model(cfg, RUN_DATE)
    assert json.loads((model.path / "tuning.json").read_text())["chosen"] == tuning["chosen"]
    for name, value in tuning["chosen"].items():
        assert getattr(model.config, name) == (tuple(value) if isinstance(value, list) else value)
    assert summaries["evaluate"]["tuning"]["chosen"] == tuning["chosen"]
    paired = summaries["evaluate"]["paired"]["all"]
    assert paired["lo"] <= paired["mean_diff"] <= paired["hi"] and paired["baseline"] != "two_tower"


def test_missing_run_date_partition_fails_loudly(pipeline_run):
    cfg, _ = pipeline_run
    other = PipelineConfig(source=cfg.source, workdir=cfg.workdir)
    with pytest.raises(FileNotFoundError, match="run the ingest step first"):
        ingest.load(other, "2001-01-01")


def test_report_names_protocol_baselines_and_cohorts(pipeline_run):
    _, summaries = pipeline_run
    report = summaries["evaluate"]
    assert set(report["metrics"]) == {"two_tower", "popularity", "item_knn", "als", "content_only"}
    for metrics in report["metrics"].values():
        for k in (10, 20, 50):
            for name in ("recall", "ndcg", "hitrate", "mrr"):
                assert 0.0 <= metrics[f"{name}@{k}"] <= 1.0 and metrics[f"{name}@{k}_se"] >= 0.0
            assert 0.0 < metrics[f"coverage@{k}"] <= 1.0
    assert {"light_users", "heavy_users"} <= set(report["cohorts"])
    assert "protocol_detail" in report and report["users_evaluated"] <= report["users_total"]


def test_ablation_retrains_each_input_set_without_touching_the_run(pipeline_run):
    from dataclasses import replace

    from pipelines.ablation import ABLATIONS, run_ablation

    cfg, summaries = pipeline_run
    pointer = cfg.partition(RUN_DATE, "train") / "model.json"
    before = pointer.read_text()
    quick = replace(cfg, model=replace(cfg.model, epochs=2))
    out = run_ablation(quick, RUN_DATE, fusions=("weighted_sum",))
    assert [r["inputs"] for r in out["rows"]] == list(ABLATIONS)
    assert len({r["version"] for r in out["rows"]}) == len(ABLATIONS)  # one model per input set
    full = out["rows"][-1]["fusion_weights"]
    assert full is not None and sum(full.values()) == pytest.approx(1.0, abs=1e-5)
    id_only = out["rows"][0]["fusion_weights"]
    # The only input gets all the weight; a cold video (no training event) has no usable id, so
    # its weights are all 0 and the mean id weight is the share of warm videos.
    assert id_only["visual"] == id_only["caption"] == id_only["comments"] == 0.0
    assert 0.5 < id_only["id"] <= 1.0
    assert pointer.read_text() == before
    assert (cfg.workdir / "runs" / RUN_DATE / "ablation" / "report.json").exists()


def test_new_users_are_answered_from_their_first_watch(pipeline_run):
    """The new_users cohort: users with no training event, given their first test watch, scored
    as the API scores a user it never saw (two_tower) and by the baselines from the same watch."""
    from pipelines import artifacts, dataset, evaluate
    from recsys.split import Split

    cfg, _ = pipeline_run
    ds = dataset.load(cfg, RUN_DATE)
    model = artifacts.load_model(cfg, RUN_DATE)
    events = pd.concat([ds.split.train, ds.split.test])
    newcomers = events["user_idx"].drop_duplicates().head(5).tolist()  # pretend they are new
    split = Split(
        "global_time",
        ds.split.train[~ds.split.train["user_idx"].isin(newcomers)],
        events[events["user_idx"].isin(newcomers)],
    )
    now = np.full(len(ds.users), float(split.test["ts"].min()))
    scorers = evaluate.scorers_for_new_users(split.train, ds, with_baselines=True)
    cohort = evaluate.new_user_cohort(model, ds, split, scorers, now)
    assert set(cohort) == {"two_tower", "popularity", "item_knn", "content_only", "als"}
    assert cohort["two_tower"]["users"] == 5 and 0.0 <= cohort["two_tower"]["ndcg@10"] <= 1.0
    assert cohort["als"] == cohort["popularity"]  # ALS has no vector for them: it serves popularity


def test_redis_lost_its_data_republish_from_the_model_folder(pipeline_run, redis_client, namespace):
    """`vidrec publish --version V` brings a version back byte for byte; the nightly publish step
    restores the lost live version first, even when the gate then holds tonight's model back."""
    import shutil
    from dataclasses import replace

    from cache import keys
    from pipelines import publish
    from pipelines.cli import main

    cfg, summaries = pipeline_run
    version = summaries["train"]["version"]
    cfg2 = replace(cfg, namespace=namespace)  # a namespace of this test's own, on the run's workdir
    argv = ["publish", "--version", version, "--workdir", str(cfg.workdir), "--namespace", namespace,
            "--redis-url", cfg.redis_url]  # fmt: skip
    assert main(argv) == 0
    user = json.loads((cfg.model_dir(version) / "users.json").read_text())[0]
    snapshot = {
        k: redis_client.get(k) for k in (keys.user_key(namespace, version, user), keys.popular_key(namespace, version))
    }
    assert all(snapshot.values()) and redis_client.get(keys.live_key(namespace)).decode() == version

    def lose_everything() -> None:
        redis_client.delete(*redis_client.keys(f"vidrec:{namespace}:*"))

    lose_everything()
    assert publish.live_lost(cfg2) == version
    assert main(argv) == 0
    assert {k: redis_client.get(k) for k in snapshot} == snapshot  # the same bytes
    assert publish.live_lost(cfg2) is None

    # Tonight's model (a copy of the version, its metrics made worse) on another run date.
    worse, date2 = "20261129-badbad00", "2026-11-29"
    shutil.copytree(cfg.model_dir(version), cfg.model_dir(worse))
    metrics = json.loads((cfg.model_dir(worse) / "metrics.json").read_text())
    metrics["metrics"]["two_tower"]["ndcg@10"] -= 0.5
    (cfg.model_dir(worse) / "metrics.json").write_text(json.dumps(metrics))
    for step in ("ingest", "frame_features"):
        shutil.copytree(cfg.partition(RUN_DATE, step), cfg.partition(date2, step))
    cfg.partition(date2, "train").mkdir(parents=True)
    (cfg.partition(date2, "train") / "model.json").write_text(json.dumps({"version": worse}))
    try:
        lose_everything()
        out = publish.run(cfg2, date2)
        assert out["restored_live"] == {"version": version, "keys": out["restored_live"]["keys"], "published": True}
        assert not out["published"] and "below the live model" in out["reason"]
        assert redis_client.get(keys.live_key(namespace)).decode() == version
        assert {k: redis_client.get(k) for k in snapshot} == snapshot
    finally:
        shutil.rmtree(cfg.model_dir(worse))
        shutil.rmtree(cfg.workdir / "runs" / date2)


def test_videos_without_events_are_scored_from_content_without_tensorflow(pipeline_run):
    """The model folder's numpy item tower, with the version's new-video scoring applied, gives a video
    it never saw the rows the TF tower gave the catalogue's videos without a training event (for new
    uploads and text queries)."""
    from pipelines import artifacts, dataset
    from recsys.model import ItemContent
    from recsys.online import ITEM_TOWER_FILE, NumpyItemTower

    cfg, _ = pipeline_run
    ds = dataset.load(cfg, RUN_DATE)
    model = artifacts.load_model(cfg, RUN_DATE)
    cold = np.bincount(ds.split.train["item_idx"], minlength=len(ds.items)) == 0
    assert cold.any()
    content = ItemContent(*(getattr(ds.content, f)[cold] for f in ds.content.__dataclass_fields__))
    # scored as the version scores its videos without training events (scale and offset chosen on validation)
    rows = model.layout.new_video_rows(NumpyItemTower(model.path / ITEM_TOWER_FILE).rows(content))
    d, exported = model.layout.dim, model.item_vectors[cold]
    np.testing.assert_allclose(rows[:, : d + 1], exported[:, : d + 1], atol=1e-4)  # embedding and bias
    prior = model.layout.content_cols
    error = np.abs(rows[:, prior] - exported[:, prior]).max()
    assert error < 0.05 * np.abs(exported[:, prior]).max()  # the prior: up to the SVD's truncation
