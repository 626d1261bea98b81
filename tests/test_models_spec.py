"""Model spec strings: every accepted form, and errors that name the valid choices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clipdash.errors import ModelSpecError
from clipdash.models.spec import ModelSpec, parse_model_spec


def make_run(root: Path, model: str | None, subdir: str = "") -> Path:
    """A run folder with optional params.txt (open_clip's ``key: value`` lines) and one checkpoint."""
    root.mkdir(parents=True, exist_ok=True)
    if model is not None:
        (root / "params.txt").write_text(f"batch_size: 256\nmodel: {model}\nlr: 0.001\n")
    ckpt_dir = root / subdir
    ckpt_dir.mkdir(exist_ok=True)
    (ckpt_dir / "epoch_1.pt").write_bytes(b"")
    return root


@pytest.mark.parametrize(
    ("text", "arch", "tag"),
    [
        ("ViT-B-32:openai", "ViT-B-32", "openai"),
        ("ViT-B-32:laion2b_s34b_b79k", "ViT-B-32", "laion2b_s34b_b79k"),
        (" ViT-B-32:LAION2B-S34B-B79K ", "ViT-B-32", "laion2b_s34b_b79k"),
    ],
)
def test_pretrained_specs(text, arch, tag):
    spec = parse_model_spec(text)
    assert (spec.source, spec.arch, spec.tag, spec.path) == ("pretrained", arch, tag, None)
    assert spec.text == text


def test_file_spec(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", None)
    spec = parse_model_spec(f"{tiny_arch}@{run / 'epoch_1.pt'}")
    assert (spec.source, spec.arch, spec.tag, spec.path) == ("file", tiny_arch, None, run / "epoch_1.pt")


def test_directory_spec_with_arch_and_trailing_slash(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", None)
    spec = parse_model_spec(f"{tiny_arch}@{run}/")
    assert (spec.source, spec.arch, spec.path) == ("directory", tiny_arch, run)


def test_directory_spec_reads_arch_from_params(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", tiny_arch)
    assert parse_model_spec(f"@{run}").arch == tiny_arch


def test_checkpoints_subfolder_reads_params_of_its_run(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", tiny_arch, subdir="checkpoints")
    spec = parse_model_spec(f"@{run / 'checkpoints'}")
    assert (spec.source, spec.arch) == ("directory", tiny_arch)


def test_arch_in_spec_wins_over_params(tmp_path, tiny_arch):
    run = make_run(tmp_path / "run", "ViT-B-32")
    assert parse_model_spec(f"{tiny_arch}@{run}").arch == tiny_arch


def test_relative_path_resolves_to_absolute(tmp_path, tiny_arch, monkeypatch):
    make_run(tmp_path / "run", tiny_arch)
    monkeypatch.chdir(tmp_path)
    assert parse_model_spec("@run/").path == tmp_path / "run"


def test_unknown_arch_lists_close_matches():
    with pytest.raises(ModelSpecError, match="unknown architecture 'ViT-B-31'.*close matches: .*ViT-B-32"):
        parse_model_spec("ViT-B-31:openai")


def test_unknown_arch_from_params(tmp_path):
    run = make_run(tmp_path / "run", "ViT-Q-99")
    with pytest.raises(ModelSpecError, match="unknown architecture 'ViT-Q-99'"):
        parse_model_spec(f"@{run}")


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(
        ModelSpecError, match="unknown pretrained tag 'openia' for ViT-B-32; valid tags: openai, "
    ) as err:
        parse_model_spec("ViT-B-32:openia")
    assert "laion2b_s34b_b79k" in str(err.value)


def test_empty_tag_lists_valid_tags():
    with pytest.raises(ModelSpecError, match="valid tags: openai"):
        parse_model_spec("ViT-B-32:")


def test_arch_without_tags(tiny_arch):
    with pytest.raises(
        ModelSpecError, match=f"{tiny_arch} has no pretrained tags.*{tiny_arch}@/path/file.pt"
    ):
        parse_model_spec(f"{tiny_arch}:openai")


def test_bare_arch_names_the_accepted_forms():
    with pytest.raises(ModelSpecError, match="names neither a tag nor a path; use ARCH:TAG"):
        parse_model_spec("ViT-B-32")


def test_missing_path(tmp_path, tiny_arch):
    with pytest.raises(ModelSpecError, match=f"no such file or folder {tmp_path / 'nope'}"):
        parse_model_spec(f"{tiny_arch}@{tmp_path / 'nope'}")


def test_empty_path():
    with pytest.raises(ModelSpecError, match="no path after '@'"):
        parse_model_spec("ViT-B-32@")


def test_no_arch_and_no_params(tmp_path):
    run = make_run(tmp_path / "run", None)
    with pytest.raises(
        ModelSpecError, match=f"no architecture for {run}.*{run / 'params.txt'}.*'model: ARCH'"
    ):
        parse_model_spec(f"@{run}")


def test_spec_is_frozen_and_validated(tmp_path):
    spec = parse_model_spec("ViT-B-32:openai")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.arch = "RN50"
    with pytest.raises(ModelSpecError, match="needs a tag and no path"):
        ModelSpec(text="x", source="pretrained", arch="ViT-B-32", tag=None, path=None)
    with pytest.raises(ModelSpecError, match="needs a path and no tag"):
        ModelSpec(text="x", source="file", arch="ViT-B-32", tag="openai", path=tmp_path)
    with pytest.raises(ModelSpecError, match="must be one of pretrained, file, directory"):
        ModelSpec(text="x", source="url", arch="ViT-B-32", tag=None, path=tmp_path)
    with pytest.raises(ModelSpecError, match="has no architecture"):
        ModelSpec(text="x", source="directory", arch="", tag=None, path=tmp_path)
