"""clipdash.train: two tiny epochs on a few dozen images, then the engine evaluates them end to end."""

from __future__ import annotations

import json

import pytest
import torch

from clipdash.errors import DatasetError
from clipdash.precompute.cli import main as precompute
from clipdash.store.queries import query
from clipdash.train.captions import from_caption_csv, from_image_folder, load_templates
from clipdash.train.cli import main as train


def test_two_tiny_epochs_train_then_evaluate_end_to_end(tmp_path, shared_data):
    run = tmp_path / "tiny-run"
    status = train(
        [
            "--images",
            str(shared_data / "cifar10/train"),
            "--templates",
            str(shared_data / "prompts/cifar10.json"),
            "--limit-per-class",
            "4",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--out",
            str(run),
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    assert sorted(p.name for p in run.glob("epoch_*.pt")) == ["epoch_0.pt", "epoch_1.pt", "epoch_2.pt"]
    checkpoint = torch.load(run / "epoch_2.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    assert not any(
        k.startswith("text.transformer.") for k in checkpoint["state_dict"]
    )  # locked tower left out
    assert "text.proj.weight" in checkpoint["state_dict"]
    before = torch.load(run / "epoch_0.pt", weights_only=True)["state_dict"]
    assert not torch.equal(before["visual.conv1.weight"], checkpoint["state_dict"]["visual.conv1.weight"])
    history = json.loads((run / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]

    db = tmp_path / "results.duckdb"
    status = precompute(
        [
            "--model",
            f"@{run}/",
            "--data-root",
            str(shared_data),
            "--db",
            str(db),
            "--limit",
            "20",
            "--templates",
            "photo",
            "--evals",
            "zeroshot,tid2013,livec,probe,class_agnostic",
            "--probe-train-per-class",
            "6",
            "--ca-train-per-class",
            "3",
            "--ca-test-per-class",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    runs = query(db, "SELECT run, arch, source FROM runs")
    assert runs.iloc[0].tolist() == ["tiny-run", "clipdash-vit-t4-minilm", "directory"]
    epochs = query(db, "SELECT DISTINCT epoch FROM metrics ORDER BY epoch")["epoch"].tolist()
    assert epochs == [0, 1, 2]


def test_captions_from_templates_and_from_csv(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "imgs" / name / f"{i}.png").write_bytes(b"")
    data = from_image_folder(tmp_path / "imgs", ["a photo of a {c}.", "a {c}"], ["kitty", "puppy"])
    assert data.captions == ["a photo of a kitty.", "a kitty", "a photo of a puppy.", "a puppy"]
    assert data.caption_choices[3] == [2, 3] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "caps.csv").write_text(
        "image,caption\nimgs/cat/0.png,a cat\nimgs/dog/0.png,a dog\nimgs/dog/1.png,a cat\n"
    )
    csv_data = from_caption_csv(tmp_path / "caps.csv")
    assert csv_data.captions == ["a cat", "a dog"] and csv_data.caption_choices == [[0], [1], [0]]
    (tmp_path / "bad.csv").write_text("image,caption\nimgs/none.png,x\n")
    with pytest.raises(DatasetError, match="image not found"):
        from_caption_csv(tmp_path / "bad.csv")
    (tmp_path / "prompts.json").write_text(json.dumps({"templates": ["a {} photo", "{c}!"]}))
    assert load_templates(tmp_path / "prompts.json") == (["a {c} photo", "{c}!"], None)
