from dataclasses import replace

import numpy as np
import pytest

from recsys.model import ItemContent, TrainingExamples, TwoTowerConfig, history_windows, last_history, layout_of


def test_history_windows_never_contain_the_target():
    # user 0 watches items 5, 6, 7 at t=1, 2, 3; user 1 watches item 9 at t=2
    user = np.array([0, 1, 0, 0])
    item = np.array([7, 9, 5, 6])
    ts = np.array([3, 2, 1, 2])
    completion = np.array([0.7, 0.9, 0.5, np.nan])
    h, w = history_windows(user, item, ts, max_history=2, pad_index=99, weight=completion)
    assert h.tolist() == [
        [5, 6],  # item 7 at t=3: the two before it
        [99, 99],  # user 1's first event: empty history
        [99, 99],  # item 5 at t=1: nothing before
        [99, 5],  # item 6 at t=2
    ]
    assert all(item[i] not in h[i] for i in range(len(item)))
    # each history position carries that watch's completion (unknown = 1), padding 0
    assert w.tolist() == [[0.5, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.5]]


def test_last_history_left_pads():
    h, w = last_history(
        np.array([0, 0, 0]), np.array([1, 2, 3]), np.array([1, 2, 3]), num_users=2, max_history=2, pad_index=9
    )
    assert h.tolist() == [[2, 3], [9, 9]]
    assert w.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_config_validation():
    with pytest.raises(ValueError, match="fusion must be one of"):
        TwoTowerConfig(fusion="magic")
    with pytest.raises(ValueError, match="id_dropout"):
        TwoTowerConfig(id_dropout=1.0)
    with pytest.raises(ValueError, match="validation_fraction"):
        TwoTowerConfig(validation_fraction=1.0)
    with pytest.raises(ValueError, match="early_stopping_patience"):
        TwoTowerConfig(early_stopping_patience=-1)
    with pytest.raises(ValueError, match="content_prior_init"):
        TwoTowerConfig(content_prior_init=0.0)
    with pytest.raises(ValueError, match="weight_average_epochs"):
        TwoTowerConfig(weight_average_epochs=-1.0)


@pytest.mark.parametrize("init, temperature", [(0.1, 0.1), (1.0, 0.05)])
def test_content_prior_weight_starts_at_its_share_of_the_embeddings_scale(init, temperature):
    from recsys.model.towers import build_towers

    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, content_prior_init=init, temperature=temperature)
    _, user_tower = build_towers(cfg, _content(), num_users=3)
    assert float(user_tower.content_weight().numpy()) == pytest.approx(init / temperature, rel=1e-5)


def _content(n_items=12, rng=None):
    rng = rng or np.random.default_rng(0)
    f = lambda d: rng.normal(size=(n_items, d)).astype(np.float32)  # noqa: E731
    ones = np.ones(n_items, np.float32)
    return ItemContent(f(16), ones.copy(), f(8), ones.copy(), f(8), ones.copy())


def test_item_tower_masks_missing_modalities():
    from recsys.model.towers import build_towers

    content = _content()
    content.visual_mask[3] = 0.0
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3)
    item_tower, user_tower = build_towers(cfg, content, num_users=2)
    e = item_tower(np.arange(12, dtype=np.int32)).numpy()
    assert e.shape == (12, 8)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # Changing the visual features of item 3 (visual masked) does not change its embedding.
    content.visual[3] += 100.0
    item_tower2, _ = build_towers(cfg, content, num_users=2)
    item_tower2(np.arange(2, dtype=np.int32))  # build the layers before copying weights
    item_tower2.set_weights(item_tower.get_weights())
    e2 = item_tower2(np.arange(12, dtype=np.int32)).numpy()
    np.testing.assert_allclose(e2[3], e[3], atol=1e-6)
    assert np.abs(e2[4] - e[4]).max() == 0.0
    u = user_tower({"history": np.array([[12, 12, 1]], np.int32), "user": np.array([0], np.int32)}).numpy()
    assert u.shape == (1, layout_of(cfg).total)  # embedding, bias column, content prior


def test_train_save_reload_same_scores(tmp_path):
    from pipelines.artifacts import LoadedUserTower, save_user_tower
    from recsys.model.towers import item_embeddings
    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(1)
    n_items, n_users, n = 12, 6, 64
    content = _content(n_items, rng)
    examples = TrainingExamples(
        history=rng.integers(0, n_items + 1, (n, 3)).astype(np.int32),
        user=rng.integers(0, n_users, n).astype(np.int32),
        item=rng.integers(0, n_items, n).astype(np.int32),
    )
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, epochs=2, batch_size=16)
    result = train_two_tower(cfg, content, n_users, examples)
    assert len(result.history["loss"]) == 2 and np.isfinite(result.history["loss"]).all()
    save_user_tower(result.user_tower, tmp_path / "user_tower", 3)
    reloaded = LoadedUserTower(tmp_path / "user_tower")
    fresh = result.user_tower({"history": examples.history[:5], "user": examples.user[:5]}).numpy()
    np.testing.assert_allclose(reloaded(examples.history[:5], examples.user[:5]), fresh, atol=1e-5)
    items = item_embeddings(result.item_tower, n_items)
    np.testing.assert_allclose(items, item_embeddings(result.item_tower, n_items), atol=0)


def test_too_few_examples_is_a_clear_error():
    """One example cannot train an in-batch softmax; fewer than a batch trains in one smaller batch
    (tests/e2e/test_day_zero.py trains a source with 86)."""
    from recsys.model.training import train_two_tower

    ex = TrainingExamples(np.zeros((1, 2), np.int32), np.zeros(1, np.int32), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="at least 2"):
        train_two_tower(TwoTowerConfig(max_history=2), _content(), 1, ex)


@pytest.mark.parametrize("fusion", ["concat", "weighted_sum", "attention"])
def test_every_fusion_masks_missing_modalities(fusion):
    import tensorflow as tf

    from recsys.model.towers import build_towers, fusion_weights

    # Fixed initial weights: with 8 ReLU units (zero bias at init) an item's fused vector is all
    # zero with probability 2**-8 per item, so some seeds leave one item without a direction (at
    # the default 128 units, 2**-128).
    tf.keras.utils.set_random_seed(1)
    content = _content()
    content.visual_mask[3] = 0.0
    content.comments_mask[3] = 0.0
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, fusion=fusion)
    tower, _ = build_towers(cfg, content, num_users=2)
    e = tower(np.arange(12, dtype=np.int32)).numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    content.visual[3] += 100.0  # masked: must not move item 3
    content.comments[3] -= 50.0
    tower2, _ = build_towers(cfg, content, num_users=2)
    tower2(np.arange(2, dtype=np.int32))
    tower2.set_weights(tower.get_weights())
    np.testing.assert_allclose(tower2(np.arange(12, dtype=np.int32)).numpy()[3], e[3], atol=1e-6)
    weights = fusion_weights(tower, 12)
    if fusion == "concat":
        assert weights is None
        return
    assert set(weights) == {"id", "visual", "caption", "comments"}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    tokens, mask = tower.tokens(np.array([3, 4], np.int32))
    w = tower.fusion.modality_weights(tokens, mask).numpy()
    # item 3 has no visual and no comments: their weights are exactly 0, the rest sum to 1
    assert w[0, 1] == 0.0 and w[0, 3] == 0.0 and w[0].sum() == pytest.approx(1.0)
    if fusion == "weighted_sum":
        # untrained logits are all 0: equal weight over item 4's four present modalities
        np.testing.assert_allclose(w[1], [0.25] * 4, atol=1e-6)


def test_modalities_select_inputs():
    from recsys.model.towers import build_towers

    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        TwoTowerConfig(modalities=("id", "audio"))
    assert TwoTowerConfig(modalities=["id"]).modalities == ("id",)
    content = _content()
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, modalities=("id",))
    tower, _ = build_towers(cfg, content, num_users=2)
    e = tower(np.arange(12, dtype=np.int32)).numpy()
    content.caption[:] += 10.0  # an id-only tower ignores content entirely
    tower2, _ = build_towers(cfg, content, num_users=2)
    tower2(np.arange(2, dtype=np.int32))
    tower2.set_weights(tower.get_weights())
    np.testing.assert_allclose(tower2(np.arange(12, dtype=np.int32)).numpy(), e, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_user_tower_pooling_ignores_padding(pooling):
    from recsys.model.towers import build_towers

    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=4, user_pooling=pooling)
    _, user_tower = build_towers(cfg, _content(), num_users=2)
    pad = 12
    history = np.array([[pad, pad, 3, 5], [pad, 1, 3, 5]], np.int32)
    items = user_tower.item_tower(np.maximum(history, 0).reshape(-1)).numpy().reshape(2, 4, 8)
    mask = (history != pad).astype(np.float32)
    w = user_tower.history_weights(items, mask, mask).numpy()
    assert w[0, :2].tolist() == [0.0, 0.0] and w[0].sum() == pytest.approx(1.0)
    assert w[1, 0] == 0.0 and w[1].sum() == pytest.approx(1.0)
    if pooling == "mean":
        np.testing.assert_allclose(w[1, 1:], [1 / 3] * 3, atol=1e-6)
    out = user_tower({"history": history, "user": np.array([0, 1], np.int32)}).numpy()
    assert out.shape == (2, layout_of(cfg).total) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="user_pooling"):
        TwoTowerConfig(user_pooling="max")


def test_same_seed_same_model():
    from recsys.model.towers import item_embeddings
    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(3)
    content = _content(12, rng)
    examples = TrainingExamples(
        history=rng.integers(0, 13, (96, 3)).astype(np.int32),
        user=rng.integers(0, 6, 96).astype(np.int32),
        item=rng.integers(0, 12, 96).astype(np.int32),
    )
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, epochs=2, batch_size=16)
    a = item_embeddings(train_two_tower(cfg, content, 6, examples).item_tower, 12)
    b = item_embeddings(train_two_tower(cfg, content, 6, examples).item_tower, 12)
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_completion_weighting(pooling):
    from recsys.model.towers import build_towers

    pad = 12
    history = np.array([[pad, 1, 3, 5]], np.int32)
    completion = np.array([[0.0, 1.0, 0.5, 0.25]], np.float32)
    mask = (history != pad).astype(np.float32)
    for weighting in (False, True):
        cfg = TwoTowerConfig(
            embedding_dim=8, id_dim=4, hidden_dim=8, max_history=4, user_pooling=pooling, completion_weighting=weighting
        )
        _, user_tower = build_towers(cfg, _content(), num_users=2)
        items = user_tower.item_tower(history.reshape(-1)).numpy().reshape(1, 4, 8)
        w = user_tower.history_weights(items, mask, completion).numpy()[0]
        plain = user_tower.history_weights(items, mask, mask).numpy()[0]
        assert w[0] == 0.0 and w.sum() == pytest.approx(1.0)
        if not weighting:
            np.testing.assert_allclose(w, plain, atol=1e-7)  # completion ignored
        else:
            # each position's weight moves by its completion: ratios to the unweighted ones are 1 : 0.5 : 0.25
            ratio = w[1:] / plain[1:]
            np.testing.assert_allclose(ratio / ratio[0], [1.0, 0.5, 0.25], rtol=1e-5)
        out = user_tower({"history": history, "user": np.array([0], np.int32), "weight": completion}).numpy()
        assert np.isfinite(out).all()


def test_weight_average_is_the_moving_average_of_every_step_and_swaps_back():
    import tensorflow as tf

    from recsys.model.training import WeightAverage

    class Scaled(tf.keras.layers.Layer):  # a scalar weight too: get_weights gives 0-d arrays for those
        def build(self, shape):
            self.dense = tf.keras.layers.Dense(2)
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

        def call(self, x):
            return self.dense(x) * self.scale

    class Steps(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append([np.array(w, copy=True) for w in self.model.get_weights()])

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((3,)), Scaled()])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    steps, average = Steps(), WeightAverage(decay=0.8)
    model.fit(x, x[:, :2] * 3.0, batch_size=8, epochs=2, verbose=0, callbacks=[steps, average])
    expected = steps.seen[0]
    for now in steps.seen[1:]:
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, now, strict=True)]
    trained = model.get_weights()
    assert len(steps.seen) == 16 and not np.allclose(expected[-1], trained[-1])  # the scale moved
    average.swap()
    for got, want in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    average.swap()
    for got, want in zip(model.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("average_epochs", [0.0, 1.0])
def test_early_stopping_keeps_the_best_epoch(average_epochs):
    from recsys.model import ValidationSet
    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(5)
    n_items, n_users = 12, 8
    content = _content(n_items, rng)
    # users prefer items u % 3 * 4 .. +3: learnable structure, so validation NDCG moves
    user = rng.integers(0, n_users, 256).astype(np.int32)
    item = ((user % 3) * 4 + rng.integers(0, 4, 256)).astype(np.int32)
    examples = TrainingExamples(history=np.full((256, 3), n_items, np.int32), user=user, item=item)
    val_users = np.arange(n_users, dtype=np.int32)
    validation = ValidationSet(
        history=np.full((n_users, 3), n_items, np.int32),
        weight=np.ones((n_users, 3), np.float32),
        user=val_users,
        exclude=[np.zeros(0, np.int64)] * n_users,
        relevant=[{int(u % 3 * 4)} for u in val_users],
    )
    cfg = TwoTowerConfig(
        embedding_dim=8,
        id_dim=4,
        hidden_dim=8,
        max_history=3,
        epochs=8,
        batch_size=32,
        early_stopping_patience=2,
        weight_average_epochs=average_epochs,
    )
    result = train_two_tower(cfg, content, n_users, examples, validation)
    scores = result.history["val_ndcg@10"]
    assert len(scores) == len(result.history["loss"]) <= 8
    best = int(np.argmax(scores))
    assert result.history["best_epoch"] == [best + 1]
    if len(scores) < 8:  # stopped early: exactly `patience` epochs without a better score
        assert len(scores) - 1 - best == 2
    # the exported weights are the best epoch's (as judged: averaged where averaging), not the last one's
    assert validation.ndcg(result) == pytest.approx(scores[best], abs=1e-9)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"user_pooling": "attention", "completion_weighting": True},
        {"use_user_id": False, "completion_weighting": True},
    ],
)
def test_numpy_user_tower_matches_tensorflow(tmp_path, settings):
    from dataclasses import asdict

    from recsys.model.towers import build_towers, item_matrix
    from recsys.online import NumpyUserTower, export_numpy_user_tower

    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=4, **settings)
    item_tower, user_tower = build_towers(cfg, _content(), num_users=3)
    rng = np.random.default_rng(0)
    pad = 12
    history = np.array([[pad, pad, 3, 5], [1, 2, 3, 4], [pad, pad, pad, pad]], np.int32)
    weight = rng.uniform(0, 1, (3, 4)).astype(np.float32) * (history != pad)
    users = np.array([0, 2, 3], np.int32)  # 3 = the unknown user
    user_tower.content_weight_factor.assign(2.0)  # as ``choose_prior_weight`` may leave it
    expected = user_tower({"history": history, "user": users, "weight": weight}).numpy()
    export_numpy_user_tower(user_tower, asdict(cfg), tmp_path / "tower.npz")
    # videos 3 and 4 had no training events: their rows are scored otherwise (``new_video_rows``);
    # in a history they count as the TF tower counts them
    assert cfg.content_prior
    rows = item_matrix(item_tower, 12, layout_of(cfg))
    new = replace(layout_of(cfg), new_video_scale=0.3, new_video_offset=1.0, new_video_prior=4.0)
    rows[[3, 4]] = new.new_video_rows(rows[[3, 4]])
    tower = NumpyUserTower(tmp_path / "tower.npz", rows)
    np.testing.assert_allclose(tower(history, weight, users), expected, atol=1e-5)
    # no user index given = the unknown user's row
    np.testing.assert_allclose(tower(history[2:], weight[2:]), expected[2:], atol=1e-5)


def test_content_inputs_are_balanced_across_encoders():
    """Centred on the catalogue mean and unit length per item, whatever each encoder's scale;
    absent rows stay zero and do not shift the mean."""
    rng = np.random.default_rng(1)
    n = 30
    visual = np.abs(rng.normal(size=(n, 16))).astype(np.float32) * 15 + 3  # all-positive, large
    caption = rng.normal(size=(n, 8)).astype(np.float32)
    caption /= np.linalg.norm(caption, axis=1, keepdims=True)
    mask = np.ones(n, np.float32)
    vmask = mask.copy()
    vmask[:5] = 0.0
    visual[:5] = 1e6  # garbage in absent rows must not matter
    b = ItemContent(visual, vmask, caption, mask.copy(), caption.copy(), mask.copy()).balanced()
    np.testing.assert_allclose(np.linalg.norm(b.visual[5:], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(b.visual[:5], 0.0)
    centred = visual[5:] - visual[5:].mean(axis=0)
    np.testing.assert_allclose(b.visual[5:], centred / np.linalg.norm(centred, axis=1, keepdims=True), atol=1e-5)
    # raw visual vectors all point one way; balanced ones do not
    raw_cos = (visual[5:] / np.linalg.norm(visual[5:], axis=1, keepdims=True)) @ (
        visual[5:] / np.linalg.norm(visual[5:], axis=1, keepdims=True)
    ).T
    assert raw_cos.mean() > 0.7 and (b.visual[5:] @ b.visual[5:].T).mean() < 0.1


def test_users_with_little_history_share_the_unknown_user_row(tmp_path):
    """user_id_min_events: a user below it is scored as the unknown user, in TensorFlow and numpy."""
    from dataclasses import asdict

    from recsys.model.towers import build_towers, item_matrix
    from recsys.online import NumpyUserTower, export_numpy_user_tower

    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, user_id_min_events=3)
    counts = np.array([5, 1, 3])  # user 1 has one training event
    item_tower, user_tower = build_towers(cfg, _content(), num_users=3, user_counts=counts)
    history = np.array([[12, 1, 2]] * 4, np.int32)
    out = user_tower({"history": history, "user": np.array([0, 1, 2, 3], np.int32)}).numpy()
    # same row of the user table; float32 results differ by ~1e-6 between batch rows
    np.testing.assert_allclose(out[1], out[3], rtol=1e-5, atol=1e-5)  # user 1 = the unknown user (index 3)
    assert np.abs(out[0] - out[3]).max() > 1e-4 and np.abs(out[2] - out[3]).max() > 1e-4
    export_numpy_user_tower(user_tower, asdict(cfg), tmp_path / "tower.npz")
    tower = NumpyUserTower(tmp_path / "tower.npz", item_matrix(item_tower, 12, layout_of(cfg)))
    np.testing.assert_allclose(tower(history, None, np.array([0, 1, 2, 3])), out, atol=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "weighted_sum", "attention"])
def test_numpy_item_tower_scores_new_videos_as_tensorflow_scores_cold_ones(tmp_path, fusion):
    """A video the model never saw, scored from its content in numpy (what `vidrec fresh` and
    search need without TensorFlow), gets the rows the TF item tower gives a cold video."""
    from dataclasses import asdict, replace

    import tensorflow as tf

    from recsys.model.towers import build_towers, item_matrix
    from recsys.online import NumpyItemTower, export_numpy_item_tower

    tf.keras.utils.set_random_seed(3)
    content = _content()
    content.comments_mask[[2, 7]] = 0.0  # a missing modality on some videos
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=4, fusion=fusion)
    warm = np.ones(12, bool)
    warm[[2, 5, 7]] = False  # cold: no id, as a new video has none
    item_tower, _ = build_towers(cfg, content, num_users=3, warm_items=warm)
    expected = item_matrix(item_tower, 12, layout_of(cfg))
    export_numpy_item_tower(item_tower, content, asdict(cfg), tmp_path / "items.npz")
    cold = ItemContent(*(getattr(content, f)[~warm] for f in content.__dataclass_fields__))
    np.testing.assert_allclose(NumpyItemTower(tmp_path / "items.npz").rows(cold), expected[~warm], atol=1e-5)
    # without content priors or item bias the layout is narrower, and still matches
    plain = replace(cfg, content_prior=False, item_bias=False, freshness=False)
    item_tower, _ = build_towers(plain, content, num_users=3, warm_items=warm)
    export_numpy_item_tower(item_tower, content, asdict(plain), tmp_path / "plain.npz")
    np.testing.assert_allclose(
        NumpyItemTower(tmp_path / "plain.npz").rows(cold),
        item_matrix(item_tower, 12, layout_of(plain))[~warm],
        atol=1e-5,
    )
    # with the sentiment input (its vector set away from its zero start, so it counts)
    felt = replace(cfg, sentiment_input=True)
    moods = replace(content, sentiment=np.linspace(-1, 1, 12).astype(np.float32))
    item_tower, _ = build_towers(felt, moods, num_users=3, warm_items=warm)
    item_tower.sentiment_vector.assign(np.linspace(0.5, -0.5, 8).astype(np.float32))
    export_numpy_item_tower(item_tower, moods, asdict(felt), tmp_path / "felt.npz")
    cold = ItemContent(*(getattr(moods, f)[~warm] for f in moods.__dataclass_fields__))
    with_mood = item_matrix(item_tower, 12, layout_of(felt))[~warm]
    np.testing.assert_allclose(NumpyItemTower(tmp_path / "felt.npz").rows(cold), with_mood, atol=1e-5)
    calm = NumpyItemTower(tmp_path / "felt.npz").rows(replace(cold, sentiment=np.zeros(3, np.float32)))
    assert not np.allclose(calm, with_mood, atol=1e-3)  # the input reaches the score


def test_content_prior_basis_projects_new_videos_like_the_catalogue():
    """The SVD path (inputs wider than the prior): a video's prior from the saved basis is the one
    the catalogue got, up to the truncation."""
    from recsys.model.data import content_prior, prior_inputs

    rng = np.random.default_rng(2)
    n, k = 400, 16
    base = rng.normal(size=(n, 6))  # content with a few strong directions
    content = ItemContent(
        (base @ rng.normal(size=(6, 40)) + 0.01 * rng.normal(size=(n, 40))).astype(np.float32), np.ones(n, np.float32),
        (base @ rng.normal(size=(6, 24))).astype(np.float32), np.ones(n, np.float32),
        np.zeros((n, 24), np.float32), np.zeros(n, np.float32),
    )  # fmt: skip
    vectors, modalities, basis, means = content_prior(content, k)
    assert modalities == ("visual", "caption")
    projected = prior_inputs(content, modalities, means) @ basis
    np.testing.assert_allclose(projected, vectors, atol=1e-3 * np.abs(vectors).max())
    # centred: a modality's presence adds nothing on average to the similarities it enters
    full = prior_inputs(content, modalities, means)
    np.testing.assert_allclose(full.mean(axis=0), 0.0, atol=1e-9)


def test_content_prior_reads_only_the_modalities_the_model_is_given(tmp_path):
    """An input ablation without a modality leaves it out of the prior too (the TF tower's table,
    the numpy item tower's projection); with no content modality the prior is zero."""
    from dataclasses import asdict

    from recsys.model.data import content_prior, content_prior_vectors
    from recsys.model.towers import build_towers
    from recsys.online import export_numpy_item_tower

    content = _content()
    vectors, modalities, _, _ = content_prior(content, 16, ("id", "caption"))
    assert modalities == ("caption",)
    np.testing.assert_allclose(vectors, content_prior(content, 16, ("caption",))[0])
    assert not np.allclose(vectors, content_prior_vectors(content, 16))
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, modalities=("id", "caption"))
    item_tower, _ = build_towers(cfg, content, num_users=3)
    np.testing.assert_allclose(item_tower.prior.numpy()[:12, :16], vectors, atol=1e-6)
    export_numpy_item_tower(item_tower, content, asdict(cfg), tmp_path / "items.npz")
    with np.load(tmp_path / "items.npz") as z:
        assert "prior_mean_caption" in z.files and "prior_mean_visual" not in z.files
    item_tower, _ = build_towers(replace(cfg, modalities=("id",)), content, num_users=3)
    assert not item_tower.prior.numpy().any()


def test_content_loss_scores_every_candidate_as_a_video_no_one_has_watched():
    """content_loss_weight adds a second softmax in which every candidate's id is masked: the
    content-only encoding is exactly a never-watched video's, and the loss is the sum."""
    import tensorflow as tf

    from recsys.model.towers import build_towers
    from recsys.model.training import TwoTowerModel

    with pytest.raises(ValueError, match="content_loss_weight"):
        TwoTowerConfig(content_loss_weight=-1.0)
    rng = np.random.default_rng(3)
    n_items, n_users, b = 12, 4, 8
    content = _content(n_items, rng)
    warm = np.ones(n_items, bool)
    warm[5] = False
    losses = {}
    for weight in (0.0, 1.0):
        cfg = TwoTowerConfig(
            embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, uniform_negatives=4, content_loss_weight=weight
        )
        tf.keras.utils.set_random_seed(0)
        item_tower, user_tower = build_towers(cfg, content, n_users, warm_items=warm)
        idx = np.arange(n_items, dtype=np.int32)
        with_ids, _ = item_tower.encode(idx)
        no_ids, _ = item_tower.encode(idx, ids=False)
        # the cold video is the same either way; warm ones change without their ids
        np.testing.assert_allclose(with_ids.numpy()[5], no_ids.numpy()[5], atol=1e-6)
        assert np.abs(with_ids.numpy()[warm] - no_ids.numpy()[warm]).max() > 1e-3
        model = TwoTowerModel(
            cfg, item_tower, user_tower, False, np.zeros(n_items), np.zeros(n_items, bool), np.zeros(n_items)
        )
        features = {
            "history": rng.integers(0, n_items + 1, (b, 3)).astype(np.int32),
            "user": rng.integers(0, n_users, b).astype(np.int32),
            "item": rng.permutation(n_items)[:b].astype(np.int32),
        }
        tf.random.set_seed(1)
        losses[weight] = float(model.compute_loss(features, training=False))
        rng = np.random.default_rng(3)  # the same batch for both weights
        content = _content(n_items, rng)
    assert np.isfinite(list(losses.values())).all() and losses[1.0] > losses[0.0] > 0


def test_prior_weight_chosen_on_validation_where_content_tells_what_is_watched_next():
    """Training examples carry no signal; on validation each user's next video is the one whose
    content is nearest their last: a larger prior weight ranks it first, and the choice is left
    set on the tower (the query's prior columns scale with it)."""
    from pipelines.fitting import PRIOR_WEIGHT_FACTORS, choose_prior_weight
    from recsys.model import ValidationSet
    from recsys.model.data import content_prior_vectors
    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(3)
    n_items, n_users = 40, 60
    content = _content(n_items, rng)
    user = rng.integers(0, n_users, 512).astype(np.int32)
    examples = TrainingExamples(
        history=rng.integers(0, n_items, (512, 3)).astype(np.int32),
        user=user,
        item=rng.integers(0, n_items, 512).astype(np.int32),
    )
    cfg = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=3, epochs=1, batch_size=64)
    result = train_two_tower(cfg, content, n_users, examples)
    prior = content_prior_vectors(content, cfg.content_prior_dim)
    last = rng.integers(0, n_items, n_users)
    sim = prior[last] @ prior.T
    sim[np.arange(n_users), last] = -np.inf
    history = np.full((n_users, 3), n_items, np.int32)
    history[:, -1] = last
    validation = ValidationSet(
        history=history,
        weight=np.ones((n_users, 3), np.float32),
        user=np.arange(n_users, dtype=np.int32),
        exclude=[np.array([x]) for x in last],
        relevant=[{int(np.argmax(row))} for row in sim],
    )
    before = result.user_vectors(history, validation.user)
    record = choose_prior_weight(result, validation)
    assert [r["setting"]["prior_weight_factor"] for r in record["rows"]] == list(PRIOR_WEIGHT_FACTORS)
    scores = {r["setting"]["prior_weight_factor"]: r["val_ndcg@10"] for r in record["rows"]}
    assert record["chosen"] > 1.0 and scores[record["chosen"]] > scores[1.0]
    assert float(result.user_tower.content_weight_factor.numpy()) == record["chosen"]
    after = result.user_vectors(history, validation.user)
    d = result.layout.content_dim
    np.testing.assert_allclose(after[:, -d:], record["chosen"] * before[:, -d:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[:, :-d], before[:, :-d], atol=1e-6)


def test_an_ensemble_scores_the_mean_of_its_members_in_tensorflow_and_numpy(tmp_path):
    """Two towers of different settings served as one (``recsys.model.ensemble``): a combined query
    row . a combined item row is the mean of the members' scores, and the exported numpy user and
    item towers give the TensorFlow ensemble's rows (a new video's: as its cold row)."""
    from dataclasses import asdict

    import tensorflow as tf

    from pipelines.artifacts import LoadedUserTower, save_user_tower
    from recsys.model.ensemble import EnsembleUserTower, ensemble_of
    from recsys.model.towers import build_towers
    from recsys.model.training import TrainResult
    from recsys.online import NumpyItemTower, NumpyUserTower, export_numpy_item_tower, export_numpy_user_tower
    from recsys.scoring import ScoreLayout

    tf.keras.utils.set_random_seed(5)
    content = _content()
    warm = np.ones(12, bool)
    warm[[2, 7]] = False
    base = TwoTowerConfig(embedding_dim=8, id_dim=4, hidden_dim=8, max_history=4)
    configs = [base, replace(base, temperature=0.2, modalities=("visual", "caption", "comments"))]
    members = []
    for cfg, fresh in zip(configs, ([0.5] * 20, [-0.5] * 20), strict=True):
        item_tower, user_tower = build_towers(cfg, content, num_users=3, warm_items=warm)
        layout = replace(layout_of(cfg), freshness=tuple(fresh))
        members.append(TrainResult(item_tower, user_tower, layout, np.full(12, np.nan), 12, ~warm, history={}))
    members[1].user_tower.content_weight_factor.assign(4.0)
    ensemble = ensemble_of(members)
    assert isinstance(ensemble.user_tower, EnsembleUserTower) and ensemble.layout.dim == 16
    assert ensemble.layout.freshness == (0.0,) * 20  # the members' mean
    history = np.array([[12, 12, 3, 5], [1, 2, 3, 4], [12, 12, 12, 0]], np.int32)
    users = np.array([0, 2, 3], np.int32)
    queries, rows = ensemble.user_vectors(history, users), ensemble.item_matrix()
    each = [m.user_vectors(history, users) @ m.item_matrix().T for m in members]
    np.testing.assert_allclose(queries @ rows.T, np.mean(each, axis=0), atol=1e-5)
    # numpy, as the API, `vidrec fresh` and search score it
    export_numpy_user_tower(ensemble.user_tower, asdict(base), tmp_path / "tower.npz")
    tower = NumpyUserTower(tmp_path / "tower.npz", rows)
    np.testing.assert_allclose(tower(history, None, users), queries, atol=1e-5)
    assert tower.item_to_item(history).shape == queries.shape
    export_numpy_item_tower([m.item_tower for m in members], content, asdict(base), tmp_path / "items.npz")
    cold = ItemContent(*(getattr(content, f)[~warm] for f in content.__dataclass_fields__))
    np.testing.assert_allclose(NumpyItemTower(tmp_path / "items.npz").rows(cold), rows[~warm], atol=1e-5)
    # the SavedModel the evaluation and publish steps reload
    save_user_tower(ensemble.user_tower, tmp_path / "user_tower", base.max_history)
    weight = np.ones(history.shape, np.float32)
    np.testing.assert_allclose(LoadedUserTower(tmp_path / "user_tower")(history, users, weight), queries, atol=1e-5)
    with pytest.raises(ValueError, match="one layout"):
        ScoreLayout.of_ensemble([ScoreLayout(dim=8), ScoreLayout(dim=4)])
