"""Loading weights: round trips in open_clip's and clipdash's formats, pretrained tags, hostile files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import huggingface_hub
import open_clip
import pytest
import safetensors.torch
import torch

from clipdash.errors import CheckpointError, ModelSpecError
from clipdash.models.checkpoints import CheckpointRef, resolve_checkpoints
from clipdash.models.configs import register_builtin_configs
from clipdash.models.loading import create_architecture, load_model, load_state_dict, load_weights
from clipdash.models.spec import parse_model_spec
from clipdash.train.loop import TrainConfig, save_checkpoint, write_params

LIT_ARCH = "clipdash-vit-t4-minilm"
TINY_CONFIG = Path(__file__).parent / "assets" / "tiny-clip.json"
IMAGES = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
CAPTIONS = ["a photo of a cat", "a photo of a truck"]


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """Hugging Face Hub lookups answer from the cache only (huggingface_hub reads the variable at import)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def random_model(arch: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(arch).eval()


@pytest.fixture(scope="module")
def lit_arch() -> str:
    """The bundled LiT architecture (its MiniLM text tower loads from an installed package)."""
    register_builtin_configs()
    return LIT_ARCH


@pytest.fixture(scope="module")
def lit_reference(lit_arch) -> torch.nn.Module:
    """A randomly initialised LiT model whose weights the LiT tests save and load back."""
    return random_model(lit_arch, seed=3)


@torch.no_grad()
def outputs(model: torch.nn.Module, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    return model.encode_image(IMAGES), model.encode_text(tokenizer(CAPTIONS))


def assert_same_outputs(loaded, reference: torch.nn.Module) -> None:
    got, want = outputs(loaded.model, loaded.tokenizer), outputs(reference, loaded.tokenizer)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def save_open_clip_format(path: Path, model: torch.nn.Module, epoch: int) -> Path:
    """open_clip's training format, as written under DDP (``module.`` prefixes) with an optimizer state."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    optimizer = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    torch.save({"epoch": epoch, "name": "run", "state_dict": state, "optimizer": optimizer}, path)
    return path


def test_create_architecture(tiny_arch):
    loaded = create_architecture(tiny_arch)
    assert not loaded.model.training
    assert (loaded.image_size, loaded.mean, loaded.std) == (
        32,
        open_clip.OPENAI_DATASET_MEAN,
        open_clip.OPENAI_DATASET_STD,
    )
    assert loaded.tokenizer(CAPTIONS).shape == (2, 77)
    assert loaded.logit_scale == pytest.approx(1 / 0.07)


def test_round_trip_open_clip_training_format(tmp_path, tiny_arch):
    reference = random_model(tiny_arch, seed=1)
    with torch.no_grad():
        reference.logit_scale.fill_(math.log(50))
    run = tmp_path / "run"
    run.mkdir()
    save_open_clip_format(run / "epoch_3.pt", reference, epoch=3)
    (ref,) = resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{run}"))
    torch.manual_seed(2)
    loaded = load_model(ref)
    assert not loaded.model.training
    assert loaded.logit_scale == pytest.approx(50)
    assert_same_outputs(loaded, reference)
    assert not torch.equal(
        outputs(random_model(tiny_arch, seed=2), loaded.tokenizer)[0], outputs(reference, loaded.tokenizer)[0]
    )


def test_one_architecture_many_epochs(tmp_path, tiny_arch):
    models = [random_model(tiny_arch, seed=s) for s in (10, 11)]
    for epoch, model in enumerate(models):
        save_open_clip_format(tmp_path / f"epoch_{epoch}.pt", model, epoch)
    loaded = create_architecture(tiny_arch)
    for ref, model in zip(
        resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{tmp_path}")), models, strict=True
    ):
        load_weights(loaded, ref)
        assert_same_outputs(loaded, model)


def test_load_state_dict_unwraps_and_strips_ddp_prefix(tmp_path, tiny_arch):
    model = random_model(tiny_arch, seed=0)
    state = load_state_dict(save_open_clip_format(tmp_path / "epoch_1.pt", model, 1))
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_safetensors_file(tmp_path, tiny_arch):
    model = random_model(tiny_arch, seed=4)
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file(model.state_dict(), path)
    loaded = load_model(resolve_checkpoints(parse_model_spec(f"{tiny_arch}@{path}"))[0])
    assert_same_outputs(loaded, model)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is truncated or corrupt"):
        load_state_dict(path)


def test_clipdash_trainer_checkpoint_loads_into_lit_arch(tmp_path, lit_arch, lit_reference):
    reference = lit_reference
    run = tmp_path / "lit-run"
    run.mkdir()
    write_params(run, TrainConfig(model=lit_arch), {"train_images": 10})
    save_checkpoint(run / "epoch_5.pt", 5, run.name, reference)
    assert not any(k.startswith("text.transformer.") for k in load_state_dict(run / "epoch_5.pt"))
    (ref,) = resolve_checkpoints(parse_model_spec(f"@{run}"))
    assert (ref.run, ref.epoch, ref.arch) == ("lit-run", 5, lit_arch)
    torch.manual_seed(4)
    loaded = load_model(ref)
    assert_same_outputs(loaded, reference)


def test_lit_checkpoint_with_old_position_ids_buffer(tmp_path, lit_arch, lit_reference):
    reference = lit_reference
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("text.transformer.")}
    state["text.transformer.embeddings.position_ids"] = torch.arange(512)[None]
    torch.save({"state_dict": state}, tmp_path / "old.pt")
    loaded = create_architecture(lit_arch)
    load_weights(
        loaded, CheckpointRef(run="old", epoch=-1, arch=lit_arch, tag=None, path=tmp_path / "old.pt")
    )
    assert_same_outputs(loaded, reference)


def test_text_tower_keys_are_required_unless_hf(tmp_path, monkeypatch):
    cfg = {**json.loads(TINY_CONFIG.read_text()), "custom_text": True}  # text tower under text.transformer.*
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-custom-text", cfg)
    state = random_model("tiny-custom-text", 0).state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("text.transformer.")}, tmp_path / "x.pt")
    ref = CheckpointRef(run="x", epoch=-1, arch="tiny-custom-text", tag=None, path=tmp_path / "x.pt")
    with pytest.raises(
        CheckpointError, match=r"fit architecture tiny-custom-text .* missing keys \(first: text\."
    ):
        load_model(ref)


def test_file_of_another_architecture(tmp_path, tiny_arch, lit_reference):
    save_checkpoint(tmp_path / "lit.pt", 1, "lit", lit_reference)
    ref = CheckpointRef(run="x", epoch=-1, arch=tiny_arch, tag=None, path=tmp_path / "lit.pt")
    with pytest.raises(CheckpointError) as err:
        load_model(ref)
    message = str(err.value)
    assert f"checkpoint {tmp_path / 'lit.pt'} does not fit architecture {tiny_arch}" in message
    assert "another architecture" in message
    assert " missing keys (first: " in message and " unexpected (first: " in message


def test_shape_mismatch(tmp_path, tiny_arch):
    state = random_model(tiny_arch, 0).state_dict()
    state["visual.proj"] = torch.zeros(7, 7)
    torch.save(state, tmp_path / "bad.pt")
    ref = CheckpointRef(run="x", epoch=-1, arch=tiny_arch, tag=None, path=tmp_path / "bad.pt")
    with pytest.raises(
        CheckpointError, match=r"0 missing keys, 0 unexpected, 1 shape mismatches \(first: visual.proj"
    ):
        load_model(ref)


def test_truncated_file(tmp_path, tiny_arch):
    path = save_open_clip_format(tmp_path / "epoch_1.pt", random_model(tiny_arch, 0), 1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is truncated"):
        load_state_dict(path)


def test_truncated_legacy_format_file(tmp_path, tiny_arch):
    path = tmp_path / "legacy.pt"
    torch.save(random_model(tiny_arch, 0).state_dict(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is truncated or corrupt"):
        load_state_dict(path)


class RunsCode:
    """Unpickling this calls os.system (what a weights-only loader must refuse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_would_run_code_is_refused(tmp_path, tiny_arch, zip_format):
    marker = tmp_path / "code-ran"
    path = tmp_path / "epoch_1.pt"
    payload = {"state_dict": random_model(tiny_arch, 0).state_dict(), "extra": RunsCode(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as err:
        load_state_dict(path)
    assert str(err.value) == (
        f"refused to load {path}: it contains Python objects that could run code (posix.system); "
        "clipdash only loads weights (torch.load weights_only=True)"
    )
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: the payload is live, so the check above means something
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:.*TorchScript", "ignore:`torch.jit.script` is deprecated")
def test_torchscript_archive(tmp_path):
    torch.jit.script(torch.nn.Linear(2, 2)).save(tmp_path / "ViT-B-32.pt")
    with pytest.raises(CheckpointError, match="is a TorchScript archive .* pretrained tag"):
        load_state_dict(tmp_path / "ViT-B-32.pt")


def test_empty_file(tmp_path):
    (tmp_path / "epoch_1.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_state_dict(tmp_path / "epoch_1.pt")


def test_text_file_named_pt(tmp_path):
    (tmp_path / "epoch_1.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint .* starts b'vers'"):
        load_state_dict(tmp_path / "epoch_1.pt")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {tmp_path / 'nope.pt'}"):
        load_state_dict(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a folder, not a file"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ({"epoch": 3, "name": "run"}, "keys ['epoch', 'name']"),
        ([1, 2], "a list"),
        ({"state_dict": {}}, "keys ["),
    ],
)
def test_file_without_tensors(tmp_path, content, found):
    torch.save(content, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="holds no tensors") as err:
        load_state_dict(tmp_path / "x.pt")
    assert found in str(err.value)


def test_mixed_values(tmp_path):
    torch.save({"w": torch.zeros(2), "step": 3}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="mixes tensors with other values \\('step'\\)"):
        load_state_dict(tmp_path / "x.pt")


def test_load_weights_misuse(tmp_path, tiny_arch):
    loaded = create_architecture(tiny_arch)
    with pytest.raises(ValueError, match="pretrained tag"):
        load_weights(
            loaded, CheckpointRef(run="ViT-B-32:openai", epoch=-1, arch="ViT-B-32", tag="openai", path=None)
        )
    with pytest.raises(ValueError, match=f"is for ViT-B-32, not the {tiny_arch} model"):
        load_weights(
            loaded, CheckpointRef(run="r", epoch=1, arch="ViT-B-32", tag=None, path=tmp_path / "e.pt")
        )


def test_unknown_arch_and_tag(tiny_arch):
    with pytest.raises(ModelSpecError, match="unknown architecture 'ViT-B-31'"):
        create_architecture("ViT-B-31")
    with pytest.raises(ModelSpecError, match="no pretrained tags"):
        create_architecture(tiny_arch, "openai")


def test_pretrained_offline_fails_fast_and_clearly(tmp_path):
    (ref,) = resolve_checkpoints(parse_model_spec("ViT-B-32:laion2b_s34b_b79k"))
    with pytest.raises(
        ModelSpecError,
        match="could not download pretrained weights for ViT-B-32:laion2b_s34b_b79k — offline?",
    ):
        load_model(ref, cache_dir=tmp_path)


def test_hf_text_tower_missing_offline(monkeypatch):
    vision = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16, "mlp_ratio": 2}
    text = {"hf_model_name": "clipdash-missing/model", "hf_tokenizer_name": "clipdash-missing/model"}
    cfg = {"embed_dim": 32, "vision_cfg": vision, "text_cfg": {**text, "hf_proj_type": "linear"}}
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "clipdash-missing-hf", cfg)
    with pytest.raises(
        ModelSpecError, match="could not build clipdash-missing-hf: a file it needs is missing"
    ):
        create_architecture("clipdash-missing-hf")


def hf_cache(root: Path, repo: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """A Hugging Face cache holding one file of ``repo`` at ``main`` (what ``hf_hub_download`` looks up)."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    if filename.endswith(".safetensors"):
        safetensors.torch.save_file(state, snapshot / filename)
    else:
        torch.save(state, snapshot / filename)
    return root


@pytest.mark.parametrize("filename", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_pretrained_tag_from_hf_cache(tmp_path, tiny_arch, monkeypatch, filename):
    reference = random_model(tiny_arch, seed=5)
    cache = hf_cache(tmp_path / "hub", "clipdash/tiny-test", filename, reference.state_dict())
    tag_cfg = {"hf_hub": "clipdash/tiny-test/", "url": "", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, tiny_arch, {"clipdash_test": tag_cfg})
    (ref,) = resolve_checkpoints(parse_model_spec(f"{tiny_arch}:clipdash_test"))
    assert (ref.run, ref.tag, ref.path) == (f"{tiny_arch}:clipdash_test", "clipdash_test", None)
    torch.manual_seed(6)
    loaded = load_model(ref, cache_dir=cache)
    assert (loaded.mean, loaded.std, loaded.image_size) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 32)
    assert_same_outputs(loaded, reference)


def test_zip_member_with_a_bad_crc_is_refused(tmp_path, tiny_arch):
    """4 KB zeroed in the middle of a tensor: torch.load would read the zeros as weights without a word."""
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": open_clip.create_model(tiny_arch).state_dict()}, path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"is corrupt: .* fails its CRC check"):
        load_state_dict(path)
