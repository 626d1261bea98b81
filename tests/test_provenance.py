"""Every stored number knows how it was made (issue 11): settings are stored beside it, resume compares
them, a rerun with other settings adds rows beside the old ones, and every headline number recomputes
from its measurement's per-item rows.

The first test reproduces what was found: ``--templates seed`` into a database holding the default run
printed "0 to evaluate" and stored nothing; a ``--limit`` run followed by a full one kept the small
numbers; a bf16 rerun "into the same database" did nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import cli_args
from scipy import stats

from clipdash.data.fingerprint import data_fingerprint, forget_fingerprints
from clipdash.measurements import all_tables, list_measurements
from clipdash.precompute.cli import main
from clipdash.store.queries import query, summary_table

FAST = ("--evals", "zeroshot,tid2013,livec")


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag`` set to ``value`` (appended when absent)."""
    args = list(args)
    if flag not in args:
        return [*args, flag, value]
    args[args.index(flag) + 1] = value
    return args


@pytest.fixture(scope="module")
def base_db(tmp_path_factory, tiny_run, shared_data) -> Path:
    db = tmp_path_factory.mktemp("provenance") / "results.duckdb"
    assert main(cli_args(tiny_run, shared_data, db, *FAST)) == 0
    return db


@pytest.mark.parametrize(
    ("flag", "value", "stored", "changed"),
    [
        ("--templates", "seed", ("templates", "seed"), 1),  # only zero-shot prompts with templates
        ("--limit", "30", ("limit", 30), 3),
        ("--precision", "bf16", ("precision", "bf16"), 3),
    ],
)
def test_a_rerun_with_other_settings_adds_rows_beside_the_stored_ones(
    base_db, tmp_path, tiny_run, shared_data, flag, value, stored, changed, caplog
):
    caplog.set_level(logging.INFO, logger="clipdash.precompute")
    db = tmp_path / "copy.duckdb"
    shutil.copy(base_db, db)
    before = query(db, "SELECT * FROM metrics ORDER BY ALL")
    args = _replace(cli_args(tiny_run, shared_data, db, *FAST), flag, value)
    assert main(args) == 0
    assert "3 checkpoint(s), 3 to evaluate" in caplog.text
    caplog.clear()
    settings = query(db, "SELECT eval, settings::VARCHAR AS s FROM evaluation_settings")
    key, expected = stored
    new = settings[[json.loads(s).get(key) == expected for s in settings["s"]]]
    assert len(new) == changed and len(settings) == 3 + changed
    after = query(db, "SELECT * FROM metrics ORDER BY ALL")
    kept = before.merge(after, how="left", indicator=True)
    assert (kept["_merge"] == "both").all()  # the old numbers are all still there, unchanged
    per_setting = after.groupby("setting").size()
    assert len(per_setting) == 3 + changed
    assert query(db, "SELECT count(*) n FROM evaluations")["n"].item() == 3 * (3 + changed)
    size = db.stat().st_size
    assert main(args) == 0  # the same command again: nothing to do
    assert "3 checkpoint(s), 0 to evaluate" in caplog.text
    assert query(db, "SELECT count(*) n FROM evaluations")["n"].item() == 3 * (3 + changed)
    assert db.stat().st_size == size


def test_force_recomputes_the_same_setting_without_duplicates(base_db, tmp_path, tiny_run, shared_data):
    db = tmp_path / "copy.duckdb"
    shutil.copy(base_db, db)
    counts = (
        "SELECT (SELECT count(*) FROM metrics) m, (SELECT count(*) FROM zeroshot_predictions) z, "
        "(SELECT count(*) FROM livec_scores) l, (SELECT count(*) FROM evaluations) e"
    )
    before = query(db, counts)
    assert main(cli_args(tiny_run, shared_data, db, *FAST, "--force")) == 0
    pd.testing.assert_frame_equal(query(db, counts), before)


def test_every_number_carries_the_settings_it_was_made_with(base_db):
    orphans = query(
        base_db,
        "SELECT count(*) n FROM metrics m LEFT JOIN evaluation_settings s USING (setting) "
        "WHERE s.eval IS NULL",
    )
    assert orphans["n"].item() == 0
    settings = query(base_db, "SELECT eval, settings::VARCHAR AS s FROM evaluation_settings ORDER BY eval")
    for eval_name, text in settings.itertuples(index=False):
        values = json.loads(text)
        for key in ("precision", "device", "decoder", "limit", "subset", "data", "revision"):
            assert key in values, (eval_name, key)
        assert values["precision"] == "fp32" and values["device"] == "cpu" and values["decoder"] == "pil"
        assert values["limit"] == 24 and values["subset"] == "class_balanced"
    zeroshot = json.loads(settings.set_index("eval").loc["zeroshot", "s"])
    assert zeroshot["templates"] == "photo"
    for table in ("zeroshot_predictions", "tid2013_pairs", "livec_scores"):
        per_item = query(
            base_db,
            f"SELECT DISTINCT t.setting, s.eval FROM {table} t JOIN evaluation_settings s USING (setting)",
        )
        assert len(per_item) == 1, table
    runs = query(base_db, "SELECT run_id, source_path, training_data, pretrained_tag FROM runs")
    assert len(runs["run_id"].item()) == 36 and runs["pretrained_tag"].isna().all()


def test_the_data_fingerprint_sees_files_not_folders_copies(tmp_path, shared_data):
    copy = tmp_path / "data"
    shutil.copytree(shared_data / "tid2013", copy / "tid2013")
    assert data_fingerprint(copy, ["tid2013"]) == data_fingerprint(shared_data, ["tid2013"])
    extra = next((copy / "tid2013" / "distorted_images").iterdir())
    extra.with_name("i99_01_1.bmp").write_bytes(extra.read_bytes())  # a fuller copy: one more pair
    forget_fingerprints()
    assert data_fingerprint(copy, ["tid2013"]) != data_fingerprint(shared_data, ["tid2013"])


def test_the_cli_summary_names_the_settings_it_shows(base_db, tiny_run, shared_data, capsys):
    assert main(cli_args(tiny_run, shared_data, base_db, *FAST)) == 0
    out = capsys.readouterr().out
    assert "settings of these numbers" in out
    assert "zeroshot [" in out and "templates=photo" in out and "≤ 24 images per set (class_balanced)" in out


# --- every headline number recomputes from its per-item rows -----------------------------------------


BUNDLED = Path(__file__).resolve().parents[1] / "data" / "clipdash.duckdb"


@pytest.fixture(scope="module", params=["engine", "bundled"])
def all_db(request, tmp_path_factory) -> Path:
    """Every measurement on the tiny run (made here), and the bundled database."""
    if request.param == "bundled":
        return BUNDLED
    tiny_run, shared_data = request.getfixturevalue("tiny_run"), request.getfixturevalue("shared_data")
    db = tmp_path_factory.mktemp("per-item") / "results.duckdb"
    assert main(cli_args(tiny_run, shared_data, db)) == 0
    return db


def clip_query(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    """``sql`` on the CLIP trajectory's rows of ``db`` only: every table with a ``run`` column is seen through
    a view without the ImageNet-classifier baselines (runs at epoch -1 with tests of their own,
    ``test_classifier_baselines.py``), and every table with a ``setting`` column without the settings that
    cover only some of a run's epochs (the bundled run's epoch 30 under later protocols, which
    ``test_measurement_ood.py`` and ``test_intervals.py`` test on engine runs), so these tests can key the
    trajectory's numbers by epoch."""
    with duckdb.connect() as con:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(db)])
        con.execute(
            """CREATE TEMP TABLE whole_run_settings AS
               SELECT e.setting FROM src.evaluations e
               GROUP BY e.run, e.setting
               HAVING count(DISTINCT e.epoch) = (SELECT count(DISTINCT epoch) FROM src.checkpoints c
                                                 WHERE c.run = e.run)"""
        )
        columns = con.execute(
            "SELECT table_name, list(column_name) FROM duckdb_columns() "
            "WHERE database_name = 'src' GROUP BY table_name"
        ).fetchall()
        for table, names in columns:
            keep = ["TRUE"]
            if "run" in names:
                keep.append("run NOT IN (SELECT run FROM src.runs WHERE source = 'classifier')")
            if "setting" in names:
                keep.append("setting IN (SELECT setting FROM whole_run_settings)")
            con.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM src.{table} WHERE {' AND '.join(keep)}")
        return con.execute(sql, params or []).df()


def _epochs(db: Path) -> int:
    return clip_query(db, "SELECT count(DISTINCT epoch) n FROM checkpoints")["n"].item()


def _metric(db: Path, metric: str, dataset: str, variant: str) -> pd.Series:
    frame = clip_query(
        db,
        "SELECT epoch, value FROM metrics WHERE metric = ? AND dataset = ? AND variant = ? ORDER BY epoch",
        [metric, dataset, variant],
    )
    return frame.set_index("epoch")["value"]


def test_per_item_tables_are_declared_once_and_all_filled(all_db):
    assert set(list_measurements()) >= {"zeroshot", "noise", "tid2013", "livec", "cue_conflict", "probe"}
    for table in all_tables():
        n = clip_query(all_db, f"SELECT count(DISTINCT epoch) n FROM {table.name}")["n"].item()
        assert n == _epochs(all_db), table.name


def test_zeroshot_metrics_recompute_from_predictions(all_db):
    recomputed = clip_query(
        all_db,
        "SELECT dataset, epoch, avg(top1::INT) acc1, avg(top5::INT) acc5, count(*) n "
        "FROM zeroshot_predictions GROUP BY ALL ORDER BY ALL",
    )
    for row in recomputed.itertuples():
        assert _metric(all_db, "acc1", row.dataset, "")[row.epoch] == pytest.approx(row.acc1)
        assert _metric(all_db, "acc5", row.dataset, "")[row.epoch] == pytest.approx(row.acc5)
        assert _metric(all_db, "n_images", row.dataset, "")[row.epoch] == row.n
    assert {"cifar10", "cifar100", "imagenette"} <= set(recomputed["dataset"])  # baselines: imagenette-1k
    recall = clip_query(
        all_db,
        """SELECT epoch, avg(r) mpcr FROM (SELECT epoch, label, avg((label = prediction)::INT) r
           FROM zeroshot_predictions WHERE dataset = 'cifar10' GROUP BY ALL) GROUP BY epoch ORDER BY epoch""",
    )
    expected = _metric(all_db, "mean_per_class_recall", "cifar10", "")
    assert recall["mpcr"].tolist() == pytest.approx(expected.tolist())
    probs = clip_query(all_db, "SELECT confidence, true_prob, top1 FROM zeroshot_predictions")
    assert (probs["confidence"] >= probs["true_prob"] - 1e-6).all()
    assert np.allclose(probs.loc[probs["top1"], "confidence"], probs.loc[probs["top1"], "true_prob"])


def test_noise_metrics_recompute_from_predictions(all_db):
    acc = clip_query(
        all_db,
        "SELECT epoch, severity, avg(top1::INT) acc1 FROM noise_predictions GROUP BY ALL ORDER BY ALL",
    )
    wide = acc.pivot(index="epoch", columns="severity", values="acc1")
    dataset = "cifar10-c/gaussian_noise"
    for severity in range(1, 6):
        assert _metric(all_db, "acc1", dataset, f"severity={severity}").tolist() == pytest.approx(
            wide[severity].tolist()
        )
        drop = ((wide[0] - wide[severity]) / wide[0]).tolist()
        assert _metric(all_db, "noise_drop", dataset, f"severity={severity}").tolist() == pytest.approx(drop)
    mean = wide[[1, 2, 3, 4, 5]].mean(axis=1).tolist()
    assert _metric(all_db, "acc1", dataset, "severity=mean").tolist() == pytest.approx(mean)
    clean = clip_query(
        all_db,
        "SELECT epoch, avg(top1::INT) a, count(*) n FROM zeroshot_predictions WHERE dataset = 'cifar10' "
        "GROUP BY epoch ORDER BY epoch",
    )
    n_clean = clip_query(all_db, "SELECT count(*) n FROM noise_predictions WHERE severity = 0 GROUP BY epoch")
    if (clean["n"] == n_clean["n"].iloc[0]).all():  # same images (the bundled noise uses 2,000 of them)
        assert clean["a"].tolist() == pytest.approx(wide[0].tolist())  # severity 0 is the zero-shot set


@pytest.mark.parametrize(
    ("table", "dataset", "x", "y"),
    [("tid2013_pairs", "tid2013", "cosine", "mos"), ("livec_scores", "livec", "score", "mos")],
)
def test_quality_correlations_recompute_with_scipy(all_db, table, dataset, x, y):
    variant = "distortion=all" if dataset == "tid2013" else ""
    for epoch, rows in clip_query(all_db, f"SELECT * FROM {table}").groupby("epoch"):
        assert _metric(all_db, "srcc", dataset, variant)[epoch] == pytest.approx(
            stats.spearmanr(rows[x], rows[y])[0]
        )
        assert _metric(all_db, "plcc", dataset, variant)[epoch] == pytest.approx(
            stats.pearsonr(rows[x], rows[y])[0]
        )


def test_probe_accuracy_recomputes_from_predictions(all_db):
    recomputed = clip_query(
        all_db,
        "SELECT epoch, classifier, avg((label = prediction)::INT) acc FROM probe_predictions GROUP BY ALL",
    )
    for row in recomputed.itertuples():
        assert _metric(all_db, "lp_acc1", "cifar10", f"classifier={row.classifier}")[
            row.epoch
        ] == pytest.approx(row.acc)
    assert set(recomputed["classifier"]) == {"logreg", "linear_svm"}


def test_shape_bias_recomputes_from_decisions(all_db):
    recomputed = clip_query(
        all_db,
        """SELECT epoch, protocol, count(*) FILTER (WHERE decision = shape_class)
               / (count(*) FILTER (WHERE decision IN (shape_class, texture_class))) AS shape_bias
           FROM cue_conflict_decisions GROUP BY ALL""",
    )
    for row in recomputed.itertuples():
        expected = _metric(all_db, "shape_bias", "cue-conflict", f"protocol={row.protocol}")[row.epoch]
        assert expected == pytest.approx(row.shape_bias)


def test_class_agnostic_flags_c_at_the_grid_edge(all_db):
    flags = clip_query(
        all_db,
        "SELECT variant, max(value) FILTER (WHERE metric = 'ca_C') c, "
        "max(value) FILTER (WHERE metric = 'ca_C_at_edge') edge FROM metrics "
        "WHERE metric IN ('ca_C', 'ca_C_at_edge') AND variant LIKE 'C=cv;%' GROUP BY variant, epoch",
    )
    assert len(flags) == _epochs(all_db) * 9
    for row in flags.itertuples():
        if np.isnan(row.c):
            assert np.isnan(row.edge)
        else:
            assert row.edge == float(row.c in (0.01, 100))


def test_summary_of_the_default_settings(all_db):
    table = summary_table(all_db)
    table = table[table["epoch"] >= 0]  # the baselines' row (epoch -1) besides the trajectory
    assert table["epoch"].tolist() == list(range(_epochs(all_db))) and table["acc1"].notna().all()


def test_calibration_recomputes_from_per_image_rows(all_db):
    from clipdash.evals.calibration import expected_calibration_error, reliability_bins

    rows = clip_query(all_db, "SELECT * FROM calibration_predictions ORDER BY epoch, dataset, image_index")
    assert set(rows["dataset"]) == {"cifar10", "cifar100", "imagenette"}
    for (epoch, dataset), images in rows.groupby(["epoch", "dataset"]):
        for suffix in ("", "_ts"):
            bins = reliability_bins(images[f"confidence{suffix}"], images["correct"])
            ece = _metric(all_db, f"ece{suffix}", dataset, "")[epoch]
            assert expected_calibration_error(bins) == pytest.approx(ece, abs=1e-6)
            nll = _metric(all_db, f"nll{suffix}", dataset, "")[epoch]
            assert -images[f"log_true_prob{suffix}"].mean() == pytest.approx(nll, rel=1e-5)
        (setting,) = set(images["setting"])
        revision = clip_query(
            all_db, "SELECT settings->>'revision' r FROM evaluation_settings WHERE setting = ?", [setting]
        )["r"].item()
        # revision 2 cross-fits every set; revision 1 (the bundled trajectory) scaled CIFAR-10 with its
        # train split's temperature (fold -1)
        expected = {-1} if revision == "1" and dataset == "cifar10" else {0, 1}
        assert set(images["fold"]) == expected
    counts = clip_query(
        all_db, "SELECT epoch, dataset, scaled, sum(count) n FROM calibration_bins GROUP BY ALL"
    )
    sizes = rows.groupby(["epoch", "dataset"]).size()
    assert all(row.n == sizes[(row.epoch, row.dataset)] for row in counts.itertuples())


def test_ood_metrics_recompute_from_scores(all_db):
    from sklearn.metrics import roc_auc_score

    scores = clip_query(all_db, "SELECT * FROM ood_scores")
    for (epoch, dataset), ood in scores[~scores["is_id"]].groupby(["epoch", "dataset"]):
        id_scores = scores[scores["is_id"] & (scores["epoch"] == epoch)]["score"]
        y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood))]
        auroc = roc_auc_score(y, np.r_[id_scores, ood["score"]])
        assert auroc == pytest.approx(_metric(all_db, "auroc", dataset, "id=cifar10")[epoch], abs=1e-6)
        assert len(ood) == _metric(all_db, "n_ood", dataset, "id=cifar10")[epoch]
    assert set(scores.loc[~scores["is_id"], "dataset"]) == {"imagenette", "cue-conflict", "livec", "mit1003"}
