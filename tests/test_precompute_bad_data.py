"""A damaged image set is found once, before the first checkpoint: its evaluation is skipped (and said so),
the other evaluations of every checkpoint are stored; nothing is computed and then thrown away."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import cli_args

from clipdash.precompute.cli import main
from clipdash.precompute.inputs import RunInputs
from clipdash.store.queries import query

EVALS = "zeroshot,tid2013,cue_conflict"


def _data_root_with(tmp_path: Path, shared_data: Path, broken: str, content: bytes) -> Path:
    """``shared_data`` with the file ``broken`` (a relative path) replaced by ``content``.

    The dataset folder holding it is mirrored as real folders of symlinked files; every other dataset
    folder is one symlink.
    """
    root = tmp_path / "data"
    dataset = Path(broken).parts[0]
    for entry in shared_data.iterdir():
        if entry.name != dataset:
            (root / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (root / entry.name).symlink_to(entry)
    for source in (shared_data / dataset).rglob("*"):
        target = root / source.relative_to(shared_data)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    (root / broken).unlink()
    (root / broken).write_bytes(content)
    return root


@pytest.fixture
def corrupt_stimulus(shared_data: Path) -> str:
    """A cue-conflict stimulus among the 24 conflict images that ``--limit 24`` uses."""
    return f"cue-conflict/stimuli/{RunInputs(shared_data, 32, limit=24).cue_conflict.names[5]}"


def test_one_corrupt_stimulus_skips_cue_conflict_once_and_stores_the_rest(
    tmp_path, tiny_run, shared_data, corrupt_stimulus, capsys, caplog
):
    data_root = _data_root_with(tmp_path, shared_data, corrupt_stimulus, b"\x89PNG\r\n\x1a\n" + bytes(500))
    db = tmp_path / "results.duckdb"
    with caplog.at_level(logging.INFO, logger="clipdash"):
        assert main(cli_args(tiny_run, data_root, db, "--evals", EVALS, "--no-cache")) == 1
    err = capsys.readouterr().err
    said = [r.getMessage() for r in caplog.records if corrupt_stimulus.split("/")[-1] in r.getMessage()]
    assert len(said) == 1, said  # once for the run, not once per checkpoint
    assert said[0].startswith("cue_conflict skipped for every checkpoint of tinyrun: 1 of 24 images")
    assert "cue_conflict" in err
    stored = query(
        db, "SELECT eval, list_sort(list(epoch)) epochs FROM evaluations GROUP BY eval ORDER BY eval"
    )
    assert stored["eval"].tolist() == ["tid2013", "zeroshot"]
    assert all(list(epochs) == [0, 1, 2] for epochs in stored["epochs"])
    assert query(db, "SELECT count(*) n FROM cue_conflict_decisions")["n"].item() == 0


def test_a_corrupt_cifar_image_skips_only_the_evaluations_that_read_it(
    tmp_path, tiny_run, shared_data, capsys
):
    first_class = sorted(p.name for p in (shared_data / "cifar10" / "test").iterdir())[0]
    first_image = sorted((shared_data / "cifar10" / "test" / first_class).iterdir())[0].name
    broken = f"cifar10/test/{first_class}/{first_image}"
    data_root = _data_root_with(tmp_path, shared_data, broken, b"\xff\xd8\xff" + bytes(300))
    db = tmp_path / "results.duckdb"
    assert main(cli_args(tiny_run, data_root, db, "--evals", "zeroshot,tid2013", "--no-cache")) == 1
    err = capsys.readouterr().err
    assert "zeroshot" in err and first_image in err
    assert query(db, "SELECT DISTINCT eval FROM evaluations")["eval"].tolist() == ["tid2013"]
