"""Checkpoint discovery: epoch order, open_clip's layout, gaps, empty runs, and the QuickGELU pitfall."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from clipdash.errors import ModelSpecError
from clipdash.models.checkpoints import CheckpointRef, quickgelu_warning, resolve_checkpoints
from clipdash.models.spec import parse_model_spec


def make_run(root: Path, epochs: list[int], params: str | None = None, subdir: str = "") -> Path:
    """A run folder of empty ``epoch_K.pt`` files (discovery never reads them) and an optional params.txt."""
    folder = root / subdir
    folder.mkdir(parents=True)
    for k in epochs:
        (folder / f"epoch_{k}.pt").write_bytes(b"")
    if params is not None:
        (root / "params.txt").write_text(params)
    return root


def test_pretrained_is_one_ref():
    refs = resolve_checkpoints(parse_model_spec("ViT-B-32:laion2b_s34b_b79k"))
    assert refs == [
        CheckpointRef(
            run="ViT-B-32:laion2b_s34b_b79k", epoch=-1, arch="ViT-B-32", tag="laion2b_s34b_b79k", path=None
        )
    ]


def test_directory_sorts_epochs_numerically_and_ignores_other_files(tmp_path, tiny_arch):
    run = make_run(tmp_path / "my-run", [10, 2, 0, 1])
    for name in ("epoch_latest.pt", "notes.txt", "epoch_3.pt.tmp", "epoch_x.pt"):
        (run / name).write_text("x")
    refs = resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run}"))
    assert [r.epoch for r in refs] == [0, 1, 2, 10]
    assert [r.path.name for r in refs] == ["epoch_0.pt", "epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    assert {(r.run, r.arch, r.tag) for r in refs} == {("my-run", tiny_arch, None)}


def test_gaps_are_allowed_but_logged(tmp_path, tiny_arch, caplog):
    run = make_run(tmp_path / "run", [0, 1, 2, 5])
    with caplog.at_level(logging.WARNING, logger="clipdash.models.checkpoints"):
        refs = resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run}"))
    assert [r.epoch for r in refs] == [0, 1, 2, 5]
    assert "run run: epochs 3, 4 missing" in caplog.text


def test_no_gap_no_log(tmp_path, tiny_arch, caplog):
    run = make_run(tmp_path / "run", [1, 2, 3])
    with caplog.at_level(logging.WARNING, logger="clipdash.models.checkpoints"):
        resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run}"))
    assert caplog.records == []


def test_open_clip_checkpoints_subfolder(tmp_path, tiny_arch):
    run = make_run(tmp_path / "oc-run", [1, 2], params=f"model: {tiny_arch}\n", subdir="checkpoints")
    for text in (f"@{run}", f"@{run / 'checkpoints'}/"):
        refs = resolve_checkpoints(parse_model_spec(text))
        assert [(r.run, r.epoch, r.path) for r in refs] == [
            ("oc-run", 1, run / "checkpoints" / "epoch_1.pt"),
            ("oc-run", 2, run / "checkpoints" / "epoch_2.pt"),
        ]


def test_empty_directory_is_an_error(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", [])
    (run / "epoch_latest.pt").write_bytes(b"")
    with pytest.raises(ModelSpecError, match=f"no epoch_K.pt checkpoints in {run} or {run / 'checkpoints'}"):
        resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run}"))


def test_file_named_by_epoch_belongs_to_its_run(tmp_path, tiny_arch):
    run = make_run(tmp_path / "r1", [7])
    (ref,) = resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run / 'epoch_7.pt'}"))
    assert ref == CheckpointRef(run="r1/epoch_7", epoch=7, arch=tiny_arch, tag=None, path=run / "epoch_7.pt")


def test_other_file_is_its_own_run(tmp_path, tiny_arch):
    (tmp_path / "final.pt").write_bytes(b"")
    (ref,) = resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{tmp_path / 'final.pt'}"))
    assert (ref.run, ref.epoch, ref.path) == ("final", -1, tmp_path / "final.pt")


@pytest.mark.parametrize(
    ("params", "spec_arch", "fix"),
    [
        ("model: ViT-B-32-quickgelu\n", "ViT-B-32", "use ViT-B-32-quickgelu instead"),
        ("model: ViT-B-32\nforce_quick_gelu: True\n", "ViT-B-32", "use ViT-B-32-quickgelu instead"),
        ("model: ViT-B-32\nforce_quick_gelu: True\n", "", "use ViT-B-32-quickgelu instead"),
        ("model: ViT-B-32\nforce_quick_gelu: False\n", "ViT-B-32-quickgelu", "use ViT-B-32 instead"),
    ],
)
def test_quickgelu_mismatch_warns_and_is_returned(tmp_path, params, spec_arch, fix):
    run = make_run(tmp_path / "run", [1], params=params)
    spec = parse_model_spec(f"{spec_arch}@{run}")
    message = quickgelu_warning(spec)
    assert message is not None and fix in message and "silently costs accuracy" in message
    with pytest.warns(UserWarning, match="QuickGELU"):
        resolve_checkpoints(spec)


@pytest.mark.parametrize(
    ("params", "spec_arch"),
    [
        ("model: ViT-B-32-quickgelu\n", "ViT-B-32-quickgelu"),
        ("model: ViT-B-32\nforce_quick_gelu: True\n", "ViT-B-32-quickgelu"),
        ("model: ViT-B-32\nforce_quick_gelu: False\n", "ViT-B-32"),
        ("lr: 0.1\n", "ViT-B-32"),
    ],
)
def test_quickgelu_match_is_silent(tmp_path, params, spec_arch):
    run = make_run(tmp_path / "run", [1], params=params)
    spec = parse_model_spec(f"{spec_arch}@{run}")
    assert quickgelu_warning(spec) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_checkpoints(spec)


def test_quickgelu_pretrained_tags():
    # OpenAI's weights use QuickGELU; open_clip's plain ViT-B-32 config does not.
    assert "use ViT-B-32-quickgelu instead" in quickgelu_warning(parse_model_spec("ViT-B-32:openai"))
    assert quickgelu_warning(parse_model_spec("ViT-B-32-quickgelu:openai")) is None
    assert quickgelu_warning(parse_model_spec("ViT-B-32:laion2b_s34b_b79k")) is None
