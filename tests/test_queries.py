"""Named queries: known rows written through the real writer in, expected frames out; the retrain function."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from clipdash.errors import StoreError
from clipdash.evals.class_agnostic import tau_sweep as sweep_taus
from clipdash.evals.retrain import retrain_class_agnostic
from clipdash.store import CheckpointResult, EvalResult, ResultWriter, queries

DECISIONS = pd.DataFrame(
    [
        # protocol, image, shape, texture, decision, shape_score, texture_score
        ("two_prompt", "cat/cat1-dog1.png", "cat", "dog", "cat", 0.9, 0.1),
        ("two_prompt", "cat/cat2-dog2.png", "cat", "dog", "cat", 0.6, 0.5),
        ("two_prompt", "cat/cat3-car1.png", "cat", "car", "car", 0.2, 0.7),
        ("two_prompt", "cat/cat4-boat1.png", "cat", "boat", "bird", 0.3, 0.3),
        ("two_prompt", "cat/cat5-cat6.png", "cat", "cat", "cat", 0.8, 0.8),  # no conflict: dropped
        ("two_prompt", "dog/dog1-cat1.png", "dog", "cat", "bird", 0.1, 0.2),  # neither cue
    ],
    columns=["protocol", "image", "shape_class", "texture_class", "decision", "shape_score", "texture_score"],
)


# Setting ids (eval, settings JSON): zero-shot under two template sets, the seed set for epochs 0-1 only.
SETTINGS = {
    "zphoto": ("zeroshot", '{"templates": "photo"}'),
    "zseed": ("zeroshot", '{"templates": "seed"}'),
    "tid": ("tid2013", "{}"),
    "cue": ("cue_conflict", '{"templates": "clip"}'),
    "ca": ("class_agnostic", "{}"),
}


def _checkpoint(run: str, epoch: int, acc: float, source: str = "directory") -> CheckpointResult:
    ca_metrics = [
        ("ca_acc1", "cifar10", "C=fixed;tau=0.07", 0.3),
        ("ca_acc1", "cifar10", "C=cv;tau=0.5", 0.4),
        ("ca_C", "cifar10", "C=cv;tau=0.5", 100.0),
        ("ca_C_at_edge", "cifar10", "C=cv;tau=0.5", 1.0),
        ("mean_entropy", "cifar10", "tau=0.07", 2.0),
    ]
    decisions = DECISIONS.assign(shape_score=DECISIONS["shape_score"] + epoch)
    entropies = pd.DataFrame(
        {"dataset": "cifar10", "tau": [0.07, 0.07, 1.0], "image_index": [0, 1, 0], "entropy": [1.0, 2.0, 3.0]}
    )
    features = pd.DataFrame(
        {
            "dataset": "cifar10",
            "split": ["train", "train", "test"],
            "image_index": [5, 2, 0],
            "label": [1, 0, 1],
            "cosines": [
                np.array([0.5, 0.1], np.float32),
                np.array([0.2, 0.3], np.float32),
                np.array([0.4, 0.0], np.float32),
            ],
        }
    )
    tables = {"entropies": entropies, "class_agnostic_features": features}
    evals = [
        EvalResult("zeroshot", 1.0, [("acc1", "cifar10", "", acc)], setting="zphoto"),
        EvalResult("tid2013", 1.0, [("srcc", "tid2013", "distortion=all", 0.5 + epoch / 10)], setting="tid"),
        EvalResult("cue_conflict", 2.0, [], {"cue_conflict_decisions": decisions}, setting="cue"),
        EvalResult("class_agnostic", 3.0, ca_metrics, tables, setting="ca"),
    ]
    if epoch in (0, 1):
        evals.append(EvalResult("zeroshot", 1.0, [("acc1", "cifar10", "", acc / 2)], setting="zseed"))
    shared = {
        "classnames": pd.DataFrame(
            {"dataset": "cifar10", "label": [1, 0], "classname": ["automobile", "airplane"]}
        ),
        "class_agnostic_prompts": pd.DataFrame(
            {"prompt_index": [0, 1], "prompt": ["a machine", "something red"]}
        ),
        "human_shape_bias": pd.DataFrame(
            [("mean", "all", 20, 1, 0.95), ("subject-01", "all", 10, 1, 10 / 11)],
            columns=["subject", "shape_class", "n_shape", "n_texture", "shape_bias"],
        ),
    }
    used = {e.setting: SETTINGS[e.setting] for e in evals}
    return CheckpointResult(
        run, epoch, f"spec-{run}", "tiny-clip", source, None, None, evals, shared, settings=used
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("queries") / "known.duckdb"
    with ResultWriter(path) as writer:
        for epoch, acc in ((0, 0.2), (1, 0.4), (2, 0.3)):
            writer.write(_checkpoint("trained", epoch, acc))
        writer.write(_checkpoint("ViT-B-32:openai", -1, 0.9, source="pretrained"))
    return str(path)


@pytest.fixture
def empty_db(tmp_path) -> str:
    path = tmp_path / "empty.duckdb"
    with ResultWriter(path):
        pass
    return str(path)


def test_runs_overview_counts_epochs_and_range(db):
    runs = queries.runs_overview(db).set_index("run")
    assert runs.loc["trained", ["n_epochs", "first_epoch", "last_epoch"]].tolist() == [3, 0, 2]
    assert runs.loc["ViT-B-32:openai", ["source", "n_epochs", "first_epoch"]].tolist() == [
        "pretrained",
        1,
        -1,
    ]


def test_measurements_and_table_counts(db, empty_db):
    evals = queries.measurements_overview(db).set_index("eval")
    assert evals.loc["cue_conflict", "n_checkpoints"] == 4
    assert evals.loc["zeroshot", "seconds"] == pytest.approx(4.0 + 2.0)  # two settings at epochs 0, 1
    assert evals.loc["zeroshot", "n_settings"] == 2
    counts = queries.table_counts(db).set_index("table")["rows"]
    assert counts["cue_conflict_decisions"] == 4 * len(DECISIONS)
    assert counts["classnames"] == 2
    assert set(queries.table_counts(empty_db)["rows"]) == {0}


def test_match_series_takes_first_stored_variant_and_skips_absent(db):
    available = queries.metric_series(db)
    assert queries.match_series(available) == [("acc1", "cifar10", ""), ("srcc", "tid2013", "distortion=all")]
    assert available.set_index(["metric", "dataset"]).loc[("acc1", "cifar10"), "eval"] == "zeroshot"


def test_metric_curves_filters_series_by_run_and_setting_pairs(db):
    series = [("acc1", "cifar10", "")]
    curves = queries.metric_curves(db, series, [("trained", "zphoto")])
    assert curves["epoch"].tolist() == [0, 1, 2]
    assert curves["value"].tolist() == pytest.approx([0.2, 0.4, 0.3])
    seed = queries.metric_curves(db, series, [("trained", "zseed")])
    assert seed["value"].tolist() == pytest.approx([0.1, 0.2]) and set(seed["setting"]) == {"zseed"}
    both = queries.metric_curves(db, series, [("trained", "zphoto"), ("ViT-B-32:openai", "zphoto")])
    assert set(both["run"]) == {"trained", "ViT-B-32:openai"}
    assert len(queries.metric_curves(db, series)) == len(curves) + len(seed) + 1  # every run and setting
    assert queries.metric_curves(db, []).empty
    assert queries.metric_curves(db, series, []).empty


def test_a_setting_chosen_for_one_run_never_draws_another_runs_rows(db):
    """Found by the Compare page's author: with flat run and setting lists, choosing zseed for the
    pretrained model and zphoto for "trained" drew both of "trained"'s settings into one curve."""
    series = [("acc1", "cifar10", "")]
    chosen = [("trained", "zphoto"), ("ViT-B-32:openai", "zseed")]
    curves = queries.metric_curves(db, series, chosen)
    assert set(curves.loc[curves["run"] == "trained", "setting"]) == {"zphoto"}


def test_run_settings_most_epochs_first_and_stored_settings(db):
    options = queries.run_settings(db, "trained", "zeroshot")
    assert options["setting"].tolist() == ["zphoto", "zseed"]
    assert options["n_epochs"].tolist() == [3, 2]
    assert '"seed"' in options.set_index("setting").loc["zseed", "settings"]
    stored = queries.stored_settings(db).set_index("setting")
    assert stored.loc["zphoto", ["eval", "n_runs", "n_checkpoints"]].tolist() == ["zeroshot", 2, 4]
    defaults = queries.default_settings(db).set_index(["run", "eval"])["setting"]
    assert defaults[("trained", "zeroshot")] == "zphoto"


def test_shape_bias_by_class_matches_hand_count(db):
    table = queries.shape_bias_by_class(db, "trained", "cue", "two_prompt", 1).set_index("shape_class")
    # cat: 2 shape (cat1, cat2), 1 texture (cat3), 1 neither (cat4); cat5 has no conflict and is dropped
    assert table.loc["cat", ["n_shape", "n_texture", "n_images"]].tolist() == [2, 1, 4]
    assert table.loc["cat", "shape_bias"] == pytest.approx(2 / 3)
    assert math.isnan(table.loc["dog", "shape_bias"])  # only an answer that is neither cue
    assert table.loc["all", "shape_bias"] == pytest.approx(2 / 3)
    assert table.index[-1] == "all"


def test_decisions_carry_cue_and_margin(db):
    frame = queries.cue_conflict_decisions(db, "trained", "cue", "two_prompt", [2]).set_index("image")
    assert frame.loc["cat/cat3-car1.png", "cue"] == "texture"
    assert frame.loc["cat/cat4-boat1.png", "cue"] == "other"
    assert frame.loc["cat/cat1-dog1.png", "margin"] == pytest.approx(2 + 0.9 - 0.1)
    assert set(queries.cue_conflict_decisions(db, "trained", "cue", "two_prompt")["epoch"]) == {0, 1, 2}
    history = queries.image_history(db, "trained", "cue", "two_prompt", "cat/cat2-dog2.png")
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["margin"].tolist() == pytest.approx([0.1, 1.1, 2.1])
    index = queries.cue_conflict_index(db)
    assert len(index) == 4 and set(index["protocol"]) == {"two_prompt"}


def test_human_shape_bias_rows(db):
    humans = queries.human_shape_bias(db).set_index("subject")
    assert humans.loc["mean", "shape_bias"] == pytest.approx(0.95)


def test_entropy_queries(db):
    values = queries.entropy_values(db, "trained", "ca", "cifar10", [0, 2], [0.07])
    assert values["epoch"].tolist() == [0, 0, 2, 2] and set(values["tau"]) == {0.07}
    means = queries.mean_entropy_by_epoch(db, "trained", "ca", "cifar10").set_index(["epoch", "tau"])
    assert means.loc[(1, 0.07), "mean_entropy"] == pytest.approx(1.5)
    assert means.loc[(1, 1.0), "n_images"] == 1
    assert len(queries.entropy_index(db)) == 4 * 2
    assert queries.prompt_count(db) == 2


def test_tau_sweep_parses_mode_and_tau(db):
    sweep = queries.tau_sweep(db, "trained", "ca")
    accuracy = sweep[(sweep["metric"] == "ca_acc1") & (sweep["epoch"] == 0)].set_index("mode")
    assert accuracy.loc["fixed", "tau"] == pytest.approx(0.07)
    assert accuracy.loc["cv", ["tau", "value"]].tolist() == pytest.approx([0.5, 0.4])
    entropy = sweep[sweep["metric"] == "mean_entropy"]
    assert set(entropy["mode"]) == {""} and len(entropy) == 3
    chosen = queries.tuned_C(db, "trained", "ca")
    assert chosen[["epoch", "tau", "C", "at_edge"]].values.tolist() == [
        [e, 0.5, 100.0, 1.0] for e in range(3)
    ]


def test_class_agnostic_features_in_image_order(db):
    splits = queries.class_agnostic_features(db, "trained", "ca", 1)
    np.testing.assert_allclose(splits.train_x, [[0.2, 0.3], [0.5, 0.1]], rtol=1e-6)  # image 2 before 5
    assert splits.train_y.tolist() == [0, 1] and splits.test_y.tolist() == [1]
    assert queries.class_agnostic_index(db).set_index("epoch").loc[1, ["n_train", "n_test"]].tolist() == [
        2,
        1,
    ]
    assert queries.classnames(db, "cifar10") == ["airplane", "automobile"]


def test_summary_shows_the_settings_asked_for_never_the_max_over_two(db):
    """Found: the summary took the max over template sets. Now one setting per measurement: the run's
    default (most epochs) or those asked for (a job's own)."""
    summary = queries.summary_table(db).set_index(["run", "epoch"])
    assert summary.loc[("trained", 1), "acc1"] == pytest.approx(0.4)  # photo: 3 epochs
    assert summary.loc[("trained", 1), "tid2013_srcc"] == pytest.approx(0.6)
    seed = queries.summary_table(db, ["zseed", "tid"]).set_index(["run", "epoch"])
    assert seed.loc[("trained", 1), "acc1"] == pytest.approx(0.2)  # the seed set's, not the max
    assert seed.loc["trained"].index.tolist() == [0, 1, 2]  # epoch 2 has TID2013 but no seed zero-shot
    assert math.isnan(seed.loc[("trained", 2), "acc1"])
    with pytest.raises(ValueError, match="two settings"):
        queries.summary_table(db, ["zseed", "zphoto"])


def test_empty_database_gives_empty_frames(empty_db):
    assert queries.runs_overview(empty_db).empty
    assert queries.metric_series(empty_db).empty
    assert queries.tau_sweep(empty_db, "x", "s").empty
    assert queries.prompt_count(empty_db) == 0
    assert queries.class_agnostic_features(empty_db, "x", "s", 0).train_x.shape == (0, 0)
    assert queries.summary_table(empty_db).empty


def test_unreadable_databases_raise_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        queries.runs_overview(tmp_path / "missing.duckdb")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="is not a DuckDB database"):
        queries.runs_overview(garbage)
    older = tmp_path / "older.duckdb"
    with duckdb.connect(str(older)) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (0)")
    with pytest.raises(StoreError, match="older"):
        queries.runs_overview(older)


# --- retraining the class-agnostic probe at one τ ----------------------------------------------------


def _separable(n_per_class: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each closest to its own one of 4 prompts."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    cosines = 0.2 + 0.01 * rng.standard_normal((len(labels), 4))
    cosines[np.arange(len(labels)), labels] += 0.1
    return cosines, labels


@pytest.mark.parametrize("classifier", ["linear_svm", "logreg"])
def test_retrain_separates_separable_classes(classifier):
    x, y = _separable()
    outcome = retrain_class_agnostic(x, y, x, y, tau=0.01, classifier=classifier, standardize=True)
    assert outcome.acc1 == pytest.approx(1.0)
    np.testing.assert_array_equal(outcome.confusion, np.diag([30, 30, 30]))


def test_retrain_mlp_learns_far_above_chance():
    x, y = _separable()
    outcome = retrain_class_agnostic(x, y, x, y, tau=0.01, classifier="mlp", standardize=True)
    assert outcome.acc1 > 0.9  # chance is 1/3; early stopping holds out 10% and may stop a step short
    assert np.trace(outcome.confusion) == round(outcome.acc1 * len(y))


def test_retrain_entropy_is_ln_k_for_flat_profiles():
    x, y = np.zeros((6, 4)), np.array([0, 1, 2, 0, 1, 2])
    outcome = retrain_class_agnostic(x, y, x, y, tau=0.05)
    assert outcome.mean_entropy == pytest.approx(math.log(4))
    assert outcome.confusion.sum() == 6


def test_retrain_reproduces_the_stored_fixed_c_sweep():
    """linear SVM, C=1, unstandardised: the precompute's fixed-C protocol, so the same accuracy per τ."""
    train_x, train_y = _separable(seed=1)
    test_x, test_y = _separable(n_per_class=10, seed=2)
    test_x = test_x + 0.03 * np.random.default_rng(3).standard_normal(test_x.shape)
    stored = sweep_taus(train_x, train_y, test_x, test_y, taus=(1, 0.07, 0.02))
    for tau, acc, entropy in stored[["tau", "acc1", "mean_entropy"]].itertuples(index=False):
        outcome = retrain_class_agnostic(train_x, train_y, test_x, test_y, tau=tau)
        assert outcome.acc1 == pytest.approx(acc)
        assert outcome.mean_entropy == pytest.approx(entropy)


def test_retrain_rejects_unknown_classifier():
    x, y = _separable()
    with pytest.raises(ValueError, match="linear_svm"):
        retrain_class_agnostic(x, y, x, y, tau=0.1, classifier="forest")
