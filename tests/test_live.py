"""clipdash.probe, the probe page's logic: hand-made tensors, the tiny random arch, trainer checkpoints."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from PIL import Image

from clipdash import charts
from clipdash.data.decode import resize_center_crop
from clipdash.errors import DatasetError, ModelSpecError
from clipdash.evals.class_agnostic import GENERIC_PROMPTS
from clipdash.models.encode import encode_images
from clipdash.probe import choices, scores
from clipdash.probe import labels as label_sets
from clipdash.probe import model as live_models
from clipdash.store import CheckpointResult, ResultWriter
from clipdash.train.loop import save_checkpoint

CPU = torch.device("cpu")


def unit(values) -> torch.Tensor:
    x = torch.as_tensor(values, dtype=torch.float32)
    return x / x.norm()


def stripes(width: int = 64, height: int = 48) -> Image.Image:
    """A deterministic non-square test image (vertical colour stripes)."""
    x = np.zeros((height, width, 3), dtype=np.uint8)
    x[:, : width // 3] = (200, 30, 30)
    x[:, width // 3 : 2 * width // 3] = (30, 200, 30)
    x[:, 2 * width // 3 :] = (30, 30, 200)
    return Image.fromarray(x)


def write_trainer_checkpoint(arch: str, path, epoch: int) -> None:
    """A randomly initialised ``arch`` saved exactly as clipdash.train saves its epochs."""
    torch.manual_seed(epoch)
    model = open_clip.create_model(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, epoch, arch, model)


@pytest.fixture(scope="module")
def tiny_run(tiny_arch, tmp_path_factory):
    """A run folder of the tiny arch with epoch_0.pt and epoch_1.pt in the trainer's format."""
    run = tmp_path_factory.mktemp("tiny-run")
    for epoch in (0, 1):
        write_trainer_checkpoint(tiny_arch, run / f"epoch_{epoch}.pt", epoch)
    return run


@pytest.fixture(scope="module")
def tiny_live(tiny_arch, tiny_run) -> live_models.LiveModel:
    return live_models.load_live_model(f"{tiny_arch}@{tiny_run / 'epoch_1.pt'}", CPU)


# Pure pieces on hand-made tensors (known answers).


def test_sixteen_class_scores_are_softmax_of_scaled_cosines():
    classifier = torch.eye(16)
    features = unit([3.0, 4.0] + [0.0] * 14)  # cos 0.6 with airplane, 0.8 with bear, 0 with the rest
    frame = scores.sixteen_class_scores(features, classifier, logit_scale=10.0)
    assert list(frame["class"]) == list(label_sets.CUE_CONFLICT_CLASSES)
    np.testing.assert_allclose(frame["cosine"].iloc[:3], [0.6, 0.8, 0.0], atol=1e-6)
    denominator = math.exp(6) + math.exp(8) + 14
    np.testing.assert_allclose(frame["probability"].iloc[1], math.exp(8) / denominator, rtol=1e-5)
    assert frame["probability"].sum() == pytest.approx(1.0, abs=1e-6)


def test_two_prompt_vote_picks_the_larger_cosine_and_ties_go_to_shape():
    classifier = torch.eye(16)
    cat, elephant = (
        label_sets.CUE_CONFLICT_CLASSES.index("cat"),
        label_sets.CUE_CONFLICT_CLASSES.index("elephant"),
    )
    weights = torch.zeros(16)
    weights[cat], weights[elephant] = 0.6, 0.8
    vote = scores.two_prompt_vote(weights, classifier, ("cat", "elephant"))
    assert list(vote["cue"]) == ["shape", "texture"] and list(vote["class"]) == ["cat", "elephant"]
    np.testing.assert_allclose(vote["cosine"], [0.6, 0.8], atol=1e-6)
    assert list(vote["wins"]) == [False, True]
    assert list(scores.two_prompt_vote(weights, classifier, ("elephant", "cat"))["wins"]) == [True, False]
    tie = torch.zeros(16)
    tie[cat] = tie[elephant] = 0.5**0.5
    assert list(scores.two_prompt_vote(tie, classifier, ("cat", "elephant"))["wins"]) == [True, False]


def test_two_prompt_vote_rejects_unknown_classes():
    with pytest.raises(ValueError, match="airplane, bear"):
        scores.two_prompt_vote(unit(torch.ones(16)), torch.eye(16), ("cat", "unicorn"))


def test_top_k_is_sorted_and_has_min_5_labels_rows():
    labels = label_sets.LabelSet("seven", tuple("abcdefg"), ("{c}",))
    features = unit([1, 7, 3, 5, 2, 6, 4])
    frame = scores.top_k(features, torch.eye(7), logit_scale=100.0, labels=labels)
    assert list(frame["rank"]) == [1, 2, 3, 4, 5]
    assert list(frame["label"]) == ["b", "f", "d", "g", "c"]
    assert frame["probability"].is_monotonic_decreasing
    two = label_sets.LabelSet("two", ("x", "y"), ("{c}",))
    assert list(scores.top_k(unit([1, 2]), torch.eye(2), 100.0, two)["label"]) == ["y", "x"]


def test_profile_of_equal_cosines_has_entropy_ln_32_at_any_tau():
    prompts = torch.eye(32)
    features = unit(torch.ones(32))
    for tau in (0.01, 1.0):
        frame, entropy = scores.prompt_profile(features, prompts, tau)
        np.testing.assert_allclose(frame["probability"], 1 / 32, rtol=1e-6)
        assert entropy == pytest.approx(math.log(32), abs=1e-9)
    assert list(frame["prompt"]) == list(GENERIC_PROMPTS)


def test_profile_of_one_close_prompt_has_entropy_near_zero_at_small_tau():
    features = unit([1.0] + [0.1] * 31)
    frame, entropy = scores.prompt_profile(features, torch.eye(32), tau=0.001)
    assert frame["probability"].iloc[0] == pytest.approx(1.0)
    assert 0 <= entropy < 1e-6


# Label sets, choices and examples.


def test_label_sets():
    assert label_sets.list_label_sets() == [
        "CIFAR-10",
        "CIFAR-100",
        "ImageNet-1k",
        "cue-conflict (16 classes)",
    ]
    cifar = label_sets.label_set("CIFAR-10")
    assert len(cifar.classnames) == 10 and "airplane" in cifar.classnames
    assert len(cifar.templates) == 18 and all("{c}" in t for t in cifar.templates)
    assert len(label_sets.label_set("CIFAR-100").classnames) == 100
    assert len(label_sets.label_set("ImageNet-1k").classnames) == 1000
    sixteen = label_sets.label_set("cue-conflict (16 classes)")
    assert sixteen.classnames == label_sets.CUE_CONFLICT_CLASSES and len(sixteen.templates) == 80
    with pytest.raises(DatasetError, match="CIFAR-10, CIFAR-100"):
        label_sets.label_set("cifar-11")


def test_custom_labels_drop_blanks_and_repeats():
    labels = label_sets.custom_label_set(" cat, dog,, cat , a red car ,")
    assert labels.classnames == ("cat", "dog", "a red car")
    assert len(labels.templates) == 80
    with pytest.raises(DatasetError, match="at least one label"):
        label_sets.custom_label_set(" , ,")


def test_typed_choice_takes_only_pretrained_tags(tiny_arch, tiny_run):
    with pytest.raises(ModelSpecError, match="ARCH:TAG"):
        choices.typed_choice(f"{tiny_arch}@{tiny_run / 'epoch_0.pt'}")
    with pytest.raises(ModelSpecError, match="no pretrained tags"):
        choices.typed_choice(f"{tiny_arch}:openai")
    with pytest.raises(ModelSpecError, match="unknown architecture"):
        choices.typed_choice("ViT-Q-99:openai")
    assert choices.typed_choice("ViT-B-32:openai") == choices.ModelChoice(
        "open_clip ViT-B-32:openai", "ViT-B-32:openai"
    )


def test_bundled_choice_only_when_the_file_exists(tmp_path):
    assert choices.bundled_choice(tmp_path / "bundled_model.pt") is None
    (tmp_path / "bundled_model.pt").write_bytes(b"x")
    choice = choices.bundled_choice(tmp_path / "bundled_model.pt")
    assert choice.spec == f"clipdash-vit-t4-minilm@{tmp_path / 'bundled_model.pt'}"


def test_database_choices_list_existing_checkpoint_files(tmp_path, tiny_arch, tiny_run):
    db = tmp_path / "results.duckdb"
    present, missing = tiny_run / "epoch_1.pt", tmp_path / "gone" / "epoch_2.pt"
    with ResultWriter(db) as writer:
        for epoch, path in ((1, present), (2, missing)):
            writer.write(
                CheckpointResult("tiny-run", epoch, f"{tiny_arch}@{tiny_run}", tiny_arch, "directory",
                                 str(path), None, [])
            )  # fmt: skip
        writer.write(CheckpointResult("ViT-B-32:openai", -1, "ViT-B-32:openai", "ViT-B-32", "pretrained",
                                      None, None, []))  # fmt: skip
    offered = choices.database_choices(db)
    assert offered == [choices.ModelChoice(f"tiny-run · epoch 1 ({tiny_arch})", f"{tiny_arch}@{present}")]


def test_cue_conflict_examples_and_pairs(tmp_path):
    for name in ("cat/cat1-elephant2.png", "cat/cat3-cat1.png", "bear/bear10-clock3.png"):
        (tmp_path / "cue-conflict" / "stimuli" / name).parent.mkdir(parents=True, exist_ok=True)
        stripes().save(tmp_path / "cue-conflict" / "stimuli" / name)
    names = choices.cue_conflict_examples(tmp_path)
    assert names == ["bear/bear10-clock3.png", "cat/cat1-elephant2.png", "cat/cat3-cat1.png"]
    assert choices.example_pair("cat/cat1-elephant2.png") == ("cat", "elephant")
    assert choices.example_pair("bear/bear10-clock3.png") == ("bear", "clock")
    assert choices.load_example(tmp_path, names[0]).size == (64, 48)
    with pytest.raises(DatasetError, match="stimuli not found"):
        choices.cue_conflict_examples(tmp_path / "elsewhere")


# A real (tiny, random) model in clipdash's trainer format.


def test_load_live_model_from_trainer_checkpoint(tiny_live, tiny_arch, tiny_run):
    assert tiny_live.loaded.arch == tiny_arch
    assert "epoch 1" in tiny_live.description and "32×32" in tiny_live.description
    state = torch.load(tiny_run / "epoch_1.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(tiny_live.loaded.model.state_dict()["visual.proj"], state["visual.proj"])


def test_a_run_folder_loads_its_last_epoch(tiny_arch, tiny_run):
    assert "epoch 1" in live_models.load_live_model(f"{tiny_arch}@{tiny_run}", CPU).description


def test_a_prewarmed_model_is_handed_over_once(tiny_arch, tiny_run, monkeypatch):
    monkeypatch.setattr(live_models, "default_device", lambda: CPU)
    spec = f"{tiny_arch}@{tiny_run / 'epoch_1.pt'}"
    live_models.prewarm(spec)
    prewarmed = live_models._PREWARMED[spec]
    assert ("prompts", tuple(GENERIC_PROMPTS)) in prewarmed._classifiers  # warmed up
    assert live_models.warmed_model(spec) is prewarmed
    live_models.prewarm(spec)  # a page has it now: no spare copy is loaded
    assert spec not in live_models._PREWARMED
    again = live_models.warmed_model(spec)  # the page's cache owns the first one; a second call loads anew
    assert again is not prewarmed and spec not in live_models._PREWARMED
    torch.testing.assert_close(
        again.loaded.model.state_dict()["visual.proj"], prewarmed.loaded.model.state_dict()["visual.proj"]
    )
    with pytest.raises(ModelSpecError, match="no such file"):
        live_models.prewarm(f"{tiny_arch}@{tiny_run / 'nope.pt'}")


def test_missing_checkpoint_is_a_model_spec_error(tiny_arch, tmp_path):
    with pytest.raises(ModelSpecError, match="no such file"):
        live_models.load_live_model(f"{tiny_arch}@{tmp_path / 'nope.pt'}", CPU)


def test_encode_image_preprocesses_like_the_engine(tiny_live):
    image = stripes(64, 48)
    pixels, features = scores.encode_image(tiny_live, image)
    expected = resize_center_crop(image, 32)
    np.testing.assert_array_equal(pixels, expected)
    engine = encode_images(tiny_live.loaded, expected[None], CPU, batch_size=1)[0]
    torch.testing.assert_close(features, engine)
    assert features.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_probe_image_on_the_tiny_model(tiny_live):
    labels = label_sets.label_set("CIFAR-10")
    result = scores.probe_image(tiny_live, stripes(), tau=0.07, labels=labels, pair=("cat", "elephant"))
    assert result.pixels.shape == (32, 32, 3)
    assert len(result.sixteen) == 16 and result.sixteen["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    assert len(result.top5) == 5 and result.top5["probability"].is_monotonic_decreasing
    assert set(result.top5["label"]) <= set(labels.classnames)
    wins = result.vote.loc[result.vote["wins"], "cosine"].item()
    assert wins == result.vote["cosine"].max()
    # The vote's cosines are the 16-class cosines of the pair's classes.
    by_class = result.sixteen.set_index("class")["cosine"]
    np.testing.assert_allclose(result.vote["cosine"], by_class[["cat", "elephant"]], atol=1e-5)
    assert len(result.profile) == 32 and result.profile["probability"].sum() == pytest.approx(1.0)
    assert 0 <= result.entropy <= scores.MAX_ENTROPY
    assert set(result.tables()) == {"sixteen", "vote", "top5", "profile"}


def test_entropy_tends_to_ln_32_as_tau_grows(tiny_live):
    labels = label_sets.custom_label_set("cat, dog")
    entropies = [
        scores.probe_image(tiny_live, stripes(), t, labels, ("cat", "dog")).entropy for t in (0.01, 1e6)
    ]
    assert entropies[1] == pytest.approx(math.log(32), abs=1e-6)
    assert entropies[0] < entropies[1]


def test_top5_of_two_custom_labels_has_two_rows(tiny_live):
    result = scores.probe_image(
        tiny_live, stripes(), 0.07, label_sets.custom_label_set("cat, dog"), ("cat", "dog")
    )
    assert sorted(result.top5["label"]) == ["cat", "dog"] and list(result.top5["rank"]) == [1, 2]


def test_classifiers_are_memoised(tiny_live):
    labels = label_sets.custom_label_set("cat, dog")
    assert tiny_live.classifier(labels) is tiny_live.classifier(label_sets.custom_label_set("cat,dog"))
    assert tiny_live.classifier(labels).shape == (32, 2)


def test_charts_carry_their_tables(tiny_live):
    result = scores.probe_image(
        tiny_live, stripes(), 0.07, label_sets.label_set("CIFAR-10"), ("cat", "elephant")
    )
    drawn = (
        (charts.sixteen_class_chart(result.sixteen, ("cat", "elephant")), 16),
        (charts.vote_chart(result.vote), 2),
        (charts.top5_chart(result.top5, "CIFAR-10"), 5),
        (charts.profile_chart(result.profile, 0.07), 32),
    )
    for chart, rows in drawn:
        spec = chart.to_dict()
        assert rows in {len(values) for values in spec["datasets"].values()}


# clipdash's own architecture (locked MiniLM tower left out of the checkpoint), as the bundled model.


def test_bundled_architecture_checkpoint_loads_and_probes(tmp_path):
    from clipdash.models.configs import register_builtin_configs

    register_builtin_configs()
    path = tmp_path / "run" / "epoch_2.pt"
    write_trainer_checkpoint(choices.BUNDLED_ARCH, path, 2)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert not any(key.startswith("text.transformer.") for key in saved)
    model = choices.bundled_choice(path)
    loaded = live_models.load_live_model(model.spec, CPU)
    assert loaded.loaded.image_size == 32 and "epoch 2" in loaded.description
    pixels, features = scores.encode_image(loaded, stripes())
    profile, entropy = scores.prompt_profile(features, loaded.prompt_features(GENERIC_PROMPTS), 0.07)
    assert pixels.shape == (32, 32, 3) and features.norm().item() == pytest.approx(1.0, abs=1e-4)
    assert isinstance(profile, pd.DataFrame) and 0 <= entropy <= scores.MAX_ENTROPY


@pytest.fixture(scope="module")
def offered_models(tiny_live) -> dict[str, live_models.LiveModel]:
    """A model of each kind the probe page offers here: the bundled checkpoint and a database's file
    (a typed ARCH:TAG needs the hub, which is offline here)."""
    from clipdash.models.configs import register_builtin_configs

    register_builtin_configs()
    bundled = choices.bundled_choice(Path(__file__).resolve().parents[1] / "data" / "bundled_model.pt")
    models = {"database file": tiny_live}
    if bundled is not None:
        models["bundled"] = live_models.load_live_model(bundled.spec, CPU)
    return models


@pytest.mark.parametrize("size", [(1, 1), (5000, 1), (1, 5000), (3, 4000), (20_000, 1)])
def test_every_offered_model_probes_images_of_any_allowed_shape(offered_models, size):
    from clipdash.data.upload import decode_upload

    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 40, 40)).save(buffer, format="PNG")
    image = decode_upload(buffer.getvalue())
    labels = label_sets.label_set(label_sets.list_label_sets()[0])
    for name, model in offered_models.items():
        result = scores.probe_image(model, image, 0.07, labels, ("cat", "elephant"))
        side = model.loaded.image_size
        assert result.pixels.shape == (side, side, 3), name
        assert result.vote["wins"].sum() == 1 and np.isfinite(result.entropy), name


@pytest.mark.parametrize("template_set", ["seed", "clip"])
def test_probe_votes_equal_the_stored_votes_of_the_run_s_template_set(
    tmp_path, tiny_arch, tiny_run, shared_data, template_set
):
    """A run made with --templates seed stored votes over "an image of {c}"; the probe used the 80 ImageNet
    templates whatever the run, so its votes for the same stimulus and checkpoint differed."""
    from conftest import cli_args

    from clipdash.precompute.cli import main
    from clipdash.store.queries import query

    db = tmp_path / "results.duckdb"
    args = cli_args(tiny_run, shared_data, db, "--evals", "cue_conflict")
    args[args.index("--templates") + 1] = template_set
    args[args.index("--limit") + 1] = "16"
    assert main(args) == 0
    choice = next(c for c in choices.database_choices(db) if " · epoch 1 " in c.label)
    assert choice.template_sets == (template_set,)
    model = live_models.load_live_model(choice.spec, CPU)
    stored = query(
        db,
        "SELECT image, shape_class, texture_class, shape_score, texture_score FROM cue_conflict_decisions "
        "WHERE epoch = 1 AND protocol = 'two_prompt' ORDER BY image LIMIT 4",
    )
    labels = label_sets.label_set("CIFAR-10")
    for row in stored.itertuples():
        image = choices.load_example(shared_data, row.image)
        pair = (row.shape_class, row.texture_class)
        result = scores.probe_image(model, image, 0.07, labels, pair, template_set=choice.template_sets[0])
        assert result.vote["cosine"].tolist() == pytest.approx([row.shape_score, row.texture_score], abs=1e-5)


def _stimuli(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / "cue-conflict" / "stimuli" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (90, 20, 20)).save(path)
    return root


def test_the_16_classes_are_read_from_the_stimuli_as_the_engine_reads_them(tmp_path, tiny_live):
    """The probe hard-coded Geirhos' 16 names; the engine reads the stimuli's shape folders."""
    root = _stimuli(tmp_path, ["apple/apple1-pear2.png", "pear/pear1-plum1.png", "plum/plum3-apple1.png"])
    classnames, note = choices.cue_conflict_classnames(root)
    assert classnames == ("apple", "pear", "plum") and note is None
    labels = label_sets.label_set("CIFAR-10")
    result = scores.probe_image(tiny_live, stripes(), 0.07, labels, ("pear", "plum"), classnames=classnames)
    assert result.sixteen["class"].tolist() == ["apple", "pear", "plum"]
    assert result.vote["class"].tolist() == ["pear", "plum"]


def test_without_usable_stimuli_the_probe_uses_geirhos_16_classes_and_says_so(tmp_path):
    assert choices.cue_conflict_classnames(None) == (label_sets.CUE_CONFLICT_CLASSES, None)
    partial = _stimuli(tmp_path, ["cat/cat10-elephant3.png"])  # a texture with no shape folder
    classnames, note = choices.cue_conflict_classnames(partial)
    assert classnames == label_sets.CUE_CONFLICT_CLASSES
    assert note.startswith("The stimuli under") and "Geirhos et al.'s 16 classes" in note
