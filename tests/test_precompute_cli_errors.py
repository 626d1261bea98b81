"""Bad command lines and unusable --db paths end with one sentence and exit code 2, never a traceback.

Exit codes: 0 everything asked was stored, 1 some checkpoints or evaluations were skipped (the rest was
stored), 2 a usage, input or store error.
"""

from __future__ import annotations

import os

import pytest
from conftest import cli_args
from test_store_failures import _schema_version_only

from clipdash.precompute.cli import main


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--limit", "0", "--limit: must be a positive integer, not 0"),
        ("--limit", "-5", "--limit: must be a positive integer, not -5"),
        ("--limit", "ten", "--limit: must be a positive integer, not 'ten'"),
        ("--batch-size", "-1", "--batch-size: must be a positive integer, not -1"),
        ("--probe-train-per-class", "0", "--probe-train-per-class: must be a positive integer, not 0"),
        ("--embeddings-per-class", "-1", "--embeddings-per-class: must be 0 or a positive integer, not -1"),
        ("--noise-seed", "-3", "--noise-seed: must be 0 or a positive integer, not -3"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(tmp_path, tiny_run, option, value, expected, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(cli_args(tiny_run, tmp_path, tmp_path / "x.duckdb", option, value))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(expected)
    assert "Traceback" not in err
    assert not (tmp_path / "x.duckdb").exists()


@pytest.mark.parametrize("evals", [",", " , ,", ""])
def test_an_empty_evals_list_is_an_error_not_a_silent_success(tmp_path, tiny_run, evals, capsys):
    assert main(cli_args(tiny_run, tmp_path, tmp_path / "x.duckdb", "--evals", evals)) == 2
    assert "--evals names no evaluation; choose from zeroshot," in capsys.readouterr().err
    assert not (tmp_path / "x.duckdb").exists()


def _truncated(path):
    """A results database with three checkpoints of per-image rows, cut to half its size."""
    from test_store_failures import _with_entropies

    from clipdash.store import ResultWriter

    with ResultWriter(path) as writer:
        for epoch in range(3):
            writer.write(_with_entropies("other-run", epoch, 50_000))
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text("hello\n"), "is not a DuckDB database"),
        (lambda p: p.write_bytes(b""), "is not a DuckDB database"),
        (lambda p: p.mkdir(), "is a folder, not a results database"),
        (_schema_version_only, "is missing the tables"),
        (_truncated, "is damaged and cannot be read"),
    ],
    ids=["text", "empty", "folder", "schema-version-only", "truncated"],
)
def test_an_unusable_db_is_one_sentence_and_exit_2(tmp_path, tiny_run, make, expected, capsys):
    db = tmp_path / "results.duckdb"
    make(db)
    before = db.read_bytes() if db.is_file() else None
    assert main(cli_args(tiny_run, tmp_path, db, "--evals", "zeroshot")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {db}") and expected in err[-1]
    assert (db.read_bytes() if db.is_file() else None) == before
