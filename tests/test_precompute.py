"""The precompute CLI end to end on a tiny random model: tables, resume, bad checkpoints, kills."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, cli_args

from clipdash.measurements import all_tables, list_measurements
from clipdash.models.checkpoints import CheckpointRef
from clipdash.models.encode import TextEncoder
from clipdash.models.loading import create_architecture, load_weights
from clipdash.precompute.cli import main
from clipdash.store.queries import query

EVALS = tuple(list_measurements())  # every registered measurement: the default --evals
KEYS = {
    "runs": ["run"],
    "checkpoints": ["run", "epoch"],
    "evaluation_settings": ["setting"],
    "evaluations": ["run", "epoch", "eval", "setting"],
    "metrics": ["run", "epoch", "setting", "metric", "dataset", "variant"],
    "human_shape_bias": ["subject", "shape_class"],
    "classnames": ["dataset", "label"],
    "class_agnostic_prompts": ["prompt_index"],
    # every measurement's per-item table, keyed by all its columns but the values
    **{
        t.name: ["run", "epoch", "setting", *(c for c, kind in t.columns if "[]" not in kind)]
        for t in all_tables()
    },
}
VOLATILE = {"created_at", "finished_at", "seconds", "run_id"}  # run_id: a fresh UUID per database


def snapshot(db: Path) -> dict[str, pd.DataFrame]:
    """Every table's rows, sorted by its key, without timing columns."""
    tables = {}
    for table, keys in KEYS.items():
        frame = query(db, f"SELECT * FROM {table}")
        tables[table] = (
            frame.drop(columns=[c for c in frame if c in VOLATILE]).sort_values(keys).reset_index(drop=True)
        )
    return tables


def assert_same_rows(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for table, frame in left.items():
        other = right[table]
        assert len(frame) == len(other), table
        for column in frame:
            a, b = frame[column], other[column]
            if len(a) and isinstance(a.iloc[0], np.ndarray | list):  # FLOAT[] columns
                assert np.allclose(np.stack(a), np.stack(b), atol=1e-5), (table, column)
            elif pd.api.types.is_float_dtype(a):
                assert np.allclose(a, b, atol=1e-6, equal_nan=True), (table, column)
            else:
                assert a.tolist() == b.tolist(), (table, column)


@pytest.fixture(scope="module")
def full_db(tmp_path_factory, tiny_run, shared_data) -> Path:
    db = tmp_path_factory.mktemp("db") / "results.duckdb"
    assert main(cli_args(tiny_run, shared_data, db)) == 0
    return db


def test_every_table_is_filled_for_every_checkpoint(full_db):
    done = query(
        full_db, "SELECT epoch, list_sort(list(eval)) evals FROM evaluations GROUP BY epoch ORDER BY epoch"
    )
    assert done["epoch"].tolist() == [0, 1, 2]
    assert all(list(e) == sorted(EVALS) for e in done["evals"])
    for table in ("cue_conflict_decisions", "entropies", "class_agnostic_features", "image_embeddings"):
        assert query(full_db, f"SELECT count(DISTINCT epoch) n FROM {table}")["n"].item() == 3, table
    assert query(full_db, "SELECT count(*) n FROM class_agnostic_prompts")["n"].item() == 32
    cosines = query(full_db, "SELECT cosines FROM class_agnostic_features LIMIT 1")["cosines"].item()
    assert len(cosines) == 32 and np.all(np.abs(cosines) <= 1 + 1e-6)
    human = query(
        full_db, "SELECT shape_bias FROM human_shape_bias WHERE subject='mean' AND shape_class='all'"
    )
    assert human["shape_bias"].item() == pytest.approx(0.958, abs=0.002)
    acc = query(full_db, "SELECT value FROM metrics WHERE metric='acc1' AND dataset='cifar10'")["value"]
    assert ((acc >= 0) & (acc <= 1)).all()
    tau = query(full_db, "SELECT count(DISTINCT tau) n FROM entropies")["n"].item()
    assert tau == 9
    tid = query(
        full_db,
        "SELECT value FROM metrics WHERE dataset='tid2013' AND metric='n_pairs' "
        "AND variant='distortion=all' AND epoch=0",
    )["value"].item()
    assert tid == 7


def test_rerun_skips_finished_pairs_and_leaves_the_file_alone(full_db, tiny_run, shared_data, capsys):
    before = full_db.read_bytes()
    assert main(cli_args(tiny_run, shared_data, full_db)) == 0
    assert full_db.read_bytes() == before
    assert "run" in capsys.readouterr().out  # the summary table


def test_evals_added_later_compute_only_what_is_missing(tmp_path, tiny_run, shared_data):
    db = tmp_path / "partial.duckdb"
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "zeroshot,tid2013")) == 0
    first = query(db, "SELECT epoch, eval, finished_at FROM evaluations")
    assert len(first) == 6
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "zeroshot,tid2013,livec")) == 0
    second = query(db, "SELECT epoch, eval, finished_at FROM evaluations")
    assert len(second) == 9
    kept = second.merge(first, on=["epoch", "eval"], suffixes=("", "_before"))
    assert (kept["finished_at"] == kept["finished_at_before"]).all()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _zeroed_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(4096) + data[middle + 4096 :]


@pytest.mark.parametrize(
    ("damage", "said"), [(_truncated, "is truncated"), (_zeroed_middle, "fails its CRC check")]
)
def test_bad_checkpoint_is_reported_and_skipped(tmp_path, tiny_run, shared_data, capsys, damage, said):
    run = tmp_path / "halfcopied"
    run.mkdir()
    for epoch in (0, 2):
        (run / f"epoch_{epoch}.pt").write_bytes((tiny_run / f"epoch_{epoch}.pt").read_bytes())
    (run / "epoch_1.pt").write_bytes(damage((tiny_run / "epoch_1.pt").read_bytes()))
    db = tmp_path / "results.duckdb"
    assert main(cli_args(run, shared_data, db, "--evals", "zeroshot")) == 1
    err = capsys.readouterr().err
    assert "epoch 1" in err and said in err
    assert query(db, "SELECT list_sort(list(epoch)) e FROM checkpoints")["e"].item().tolist() == [0, 2]


def test_unknown_eval_and_missing_data_root_are_clear_errors(tmp_path, tiny_run, shared_data, capsys):
    assert main(cli_args(tiny_run, shared_data, tmp_path / "x.duckdb", "--evals", "zeroshot,nope")) == 2
    assert "unknown evaluation(s) nope" in capsys.readouterr().err
    assert main(cli_args(tiny_run, tmp_path / "no-data", tmp_path / "x.duckdb")) == 2
    assert "data root not found" in capsys.readouterr().err


def test_killed_at_random_points_then_resumed_equals_an_uninterrupted_run(
    tmp_path, tiny_run, shared_data, full_db
):
    db = tmp_path / "killed.duckdb"
    command = [sys.executable, "-m", "clipdash.precompute", *cli_args(tiny_run, shared_data, db)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    rng = random.Random(7)
    kills = 0
    for _ in range(8):  # kill at a random moment until three kills have landed or a run completes
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=rng.uniform(2, 10))
            break
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            kills += 1
        if kills == 3:
            break
    assert kills >= 2
    assert subprocess.run(command, env=env, capture_output=True, timeout=600).returncode == 0
    assert not db.with_name(db.name + ".tmp").exists()
    assert_same_rows(snapshot(db), snapshot(full_db))


def test_hf_text_tower_trimmed_and_cached_matches_a_plain_encode():
    from clipdash.models.configs import register_builtin_configs

    register_builtin_configs()
    loaded = create_architecture("clipdash-vit-t4-minilm")
    prompts = ["a photo of a cat.", "a metallic object", "a very long prompt about a flying thing outdoors"]
    encoder = TextEncoder(torch.device("cpu"))
    encoder.start_checkpoint(loaded)
    with torch.no_grad():
        plain = torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer(prompts)), dim=-1)
    assert torch.allclose(encoder.encode(prompts), plain, atol=1e-5)
    with torch.no_grad():  # a new checkpoint changes only the projection: cached pooled outputs re-projected
        loaded.model.text.proj.weight.mul_(-1)
    encoder.start_checkpoint(loaded)
    assert torch.allclose(encoder.encode(prompts), -plain, atol=1e-5)
    with torch.no_grad():  # a changed tower invalidates the cache
        loaded.model.text.transformer.embeddings.word_embeddings.weight.mul_(0.5)
        changed = torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer(prompts)), dim=-1)
    encoder.start_checkpoint(loaded)
    assert torch.allclose(encoder.encode(prompts), changed, atol=1e-5)
    assert not torch.allclose(changed, -plain, atol=1e-3)


def test_load_weights_keeps_one_architecture_for_every_epoch(tiny_run, tiny_arch):
    loaded = create_architecture(tiny_arch)
    outputs = []
    for epoch in range(3):
        load_weights(loaded, CheckpointRef("tinyrun", epoch, tiny_arch, None, tiny_run / f"epoch_{epoch}.pt"))
        outputs.append(loaded.model.logit_scale.item() + loaded.model.visual.proj.sum().item())
    assert len(set(outputs)) == 3


def test_clip_template_set_builds_imagenet_and_cue_conflict_classifiers(tiny_arch):
    from clipdash.data.prompts import imagenet_templates
    from clipdash.precompute.context import CheckpointContext
    from clipdash.precompute.inputs import RunInputs

    loaded = create_architecture(tiny_arch)
    text = TextEncoder(torch.device("cpu"))
    text.start_checkpoint(loaded)
    ctx = CheckpointContext(loaded, RunInputs(Path("."), 32), text, torch.device("cpu"), 8, "clip")
    classifier = ctx.classifier(["cat", "dog"], imagenet_templates())
    assert classifier.shape == (32, 2)
    assert torch.allclose(classifier.norm(dim=0), torch.ones(2), atol=1e-5)


def _copy_run(source: Path, target: Path, epochs: tuple[int, ...] = (0, 1)) -> Path:
    target.mkdir(parents=True)
    for epoch in epochs:
        (target / f"epoch_{epoch}.pt").write_bytes((source / f"epoch_{epoch}.pt").read_bytes())
    return target


def test_two_run_folders_with_one_basename_are_not_merged(tmp_path, tiny_run, tiny_arch, shared_data, capsys):
    """a/seed0/ and b/seed0/ used to become one run: the second was skipped as already evaluated."""
    import open_clip

    first = _copy_run(tiny_run, tmp_path / "a" / "seed0")
    second = tmp_path / "b" / "seed0"
    second.mkdir(parents=True)
    torch.manual_seed(1)
    other = open_clip.create_model(tiny_arch).state_dict()
    for epoch in (0, 1):
        torch.save({"epoch": epoch, "state_dict": other}, second / f"epoch_{epoch}.pt")
    db = tmp_path / "results.duckdb"
    assert main(cli_args(first, shared_data, db, "--evals", "tid2013")) == 0
    assert main(cli_args(second, shared_data, db, "--evals", "tid2013")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"run 'seed0' in {db} holds the checkpoints of {first}" in err and "--run-name" in err
    assert main(cli_args(second, shared_data, db, "--evals", "tid2013", "--run-name", "b-seed0")) == 0
    runs = query(db, "SELECT run, count(*) n FROM evaluations GROUP BY run ORDER BY run")
    assert runs.to_dict("list") == {"run": ["b-seed0", "seed0"], "n": [2, 2]}
    assert main(cli_args(second, shared_data, db, "--evals", "tid2013", "--run-name", "seed0")) == 2


def test_a_moved_run_folder_is_still_the_same_run(tmp_path, tiny_run, shared_data):
    first = _copy_run(tiny_run, tmp_path / "old" / "seed0")
    db = tmp_path / "results.duckdb"
    assert main(cli_args(first, shared_data, db, "--evals", "tid2013")) == 0
    moved = tmp_path / "new" / "seed0"
    moved.parent.mkdir()
    first.rename(moved)
    _copy_run(tiny_run, tmp_path / "extra", (2,))
    (tmp_path / "extra" / "epoch_2.pt").rename(moved / "epoch_2.pt")
    assert main(cli_args(moved, shared_data, db, "--evals", "tid2013")) == 0
    assert query(db, "SELECT list_sort(list(epoch)) e FROM evaluations")["e"].item().tolist() == [0, 1, 2]


def test_run_name_needs_exactly_one_model(tmp_path, tiny_run, shared_data, capsys):
    args = cli_args(tiny_run, shared_data, tmp_path / "x.duckdb", "--run-name", "mine")
    args += ["--model", "tiny-clip@" + str(tiny_run) + "/"]
    assert main(args) == 2
    assert "--run-name names one run: give it with exactly one --model" in capsys.readouterr().err
