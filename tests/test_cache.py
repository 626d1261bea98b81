"""Decoded-image cache (reuse, invalidation, corrupt files), the torch resize path, and GPU-only options."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipdash.data.decode import (
    decode_images,
    decode_images_torch,
    device_decodable,
    resize_center_crop_tensor,
)
from clipdash.errors import ClipdashError
from clipdash.models.encode import check_precision, encode_images, prepare_model, uses_channels_last
from clipdash.models.loading import LoadedModel
from clipdash.precompute import inputs as inputs_module
from clipdash.precompute.cache import DecodedCache, DevicePixels, default_cache_dir, files_fingerprint
from clipdash.precompute.cli import main
from clipdash.precompute.inputs import RunInputs


def write_images(folder: Path, n: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (12 + i, 20, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class CountingBuild:
    """A build function that decodes ``paths`` at 8 px and counts its calls."""

    def __init__(self, paths: list[Path]):
        self.paths, self.calls = paths, 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return decode_images(self.paths, 8, workers=1)


def test_second_request_reads_the_cached_file_memory_mapped(tmp_path):
    paths = write_images(tmp_path / "images")
    cache, build = DecodedCache(tmp_path / "cache"), CountingBuild(paths)
    first = cache.array("set-8px-pil", paths, build)
    second = cache.array("set-8px-pil", paths, build)
    assert build.calls == 1
    assert isinstance(second, np.memmap) and not second.flags.writeable
    assert np.array_equal(first, second) and np.array_equal(second, decode_images(paths, 8, workers=1))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.entry_path("set-8px-pil", paths).name]


def test_a_changed_added_or_removed_file_makes_a_new_entry(tmp_path):
    paths = write_images(tmp_path / "images")
    cache, build = DecodedCache(tmp_path / "cache"), CountingBuild(paths)
    before = np.array(cache.array("set", paths, build))
    Image.fromarray(np.full((12, 20, 3), 7, dtype=np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a new mtime even on a coarse clock
    after = cache.array("set", paths, build)
    assert build.calls == 2
    assert np.all(after[0] == 7) and np.array_equal(after[1:], before[1:])
    fewer = CountingBuild(paths[:3])
    assert len(cache.array("set", paths[:3], fewer)) == 3 and fewer.calls == 1
    assert files_fingerprint(paths) != files_fingerprint(paths[:3])


def _zeroed_in_place(content: bytes) -> bytes:
    """100 bytes in the middle of the pixels zeroed, the file's size unchanged (a disk or copy error)."""
    middle = len(content) // 2
    return content[:middle] + bytes(100) + content[middle + 100 :]


def _one_bit_flipped(content: bytes) -> bytes:
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 1]) + content[middle + 1 :]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "append", "zeroed", "bit"])
def test_a_corrupt_cache_file_is_reported_and_rebuilt(tmp_path, caplog, damage):
    paths = write_images(tmp_path / "images")
    cache, build = DecodedCache(tmp_path / "cache"), CountingBuild(paths)
    expected = np.array(cache.array("set", paths, build))
    entry = cache.entry_path("set", paths)
    content = entry.read_bytes()
    damaged = {
        "truncate": content[: len(content) - 100],
        "garbage": b"not a numpy file at all",
        "append": content + b"\0" * 16,
        "zeroed": _zeroed_in_place(content),
        "bit": _one_bit_flipped(content),
    }[damage]
    assert damaged != content
    entry.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="clipdash.precompute.cache"):
        rebuilt = cache.array("set", paths, build)
    assert build.calls == 2 and str(entry) in caplog.text
    assert np.array_equal(rebuilt, expected)
    assert entry.read_bytes() == content


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    paths = write_images(tmp_path / "images")
    cache = DecodedCache(tmp_path / "cache")
    entry = cache.entry_path("set", paths)
    entry.parent.mkdir()
    dead = entry.with_name(f".{entry.name}.999999999.tmp")  # above any pid_max
    mine = entry.with_name(f".{entry.name}.{os.getppid()}.tmp")  # a writer still running
    for tmp in (dead, mine):
        tmp.write_bytes(b"partial")
    cache.array("set", paths, CountingBuild(paths))
    assert not dead.exists() and mine.exists() and entry.is_file()


def test_no_cache_root_or_an_unwritable_one_still_returns_the_array(tmp_path, caplog):
    paths = write_images(tmp_path / "images")
    build = CountingBuild(paths)
    assert len(DecodedCache(None).array("set", paths, build)) == 4
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="clipdash.precompute.cache"):
        array = DecodedCache(blocker / "cache").array("set", paths, build)
    assert len(array) == 4 and build.calls == 2 and "could not write" in caplog.text
    assert not list(tmp_path.glob("**/*.tmp"))


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPDASH_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("CLIPDASH_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "clipdash" / "decoded"


def test_run_inputs_reuse_the_cache_across_runs(tmp_path, shared_data, monkeypatch):
    cache = DecodedCache(tmp_path / "cache")
    first = RunInputs(shared_data, 16, limit=10, zeroshot_names=("cifar10", "imagenette"), cache=cache)
    pixels = {key: np.array(first.pixels(key)) for key in ("imagenette", "cifar10", "cue-conflict")}
    labels = first.labeled("cifar10").labels

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(inputs_module, "decode_images", refuse)
    monkeypatch.setattr(inputs_module, "load_cifar", refuse)
    again = RunInputs(shared_data, 16, limit=10, zeroshot_names=("cifar10", "imagenette"), cache=cache)
    for key, expected in pixels.items():
        assert np.array_equal(again.pixels(key), expected), key
    assert np.array_equal(again.labeled("cifar10").labels, labels)
    assert again.pixels("imagenette").shape == (10, 16, 16, 3)
    assert again.decoder == "pil"


@pytest.fixture
def one_torch_thread():
    """The torch resize on one thread: quick even while other jobs load the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_torch_resize_matches_pil_within_one_grey_level(shared_data, one_torch_thread):
    paths = sorted((shared_data / "imagenette" / "val").glob("*/*.JPEG"))[::200]
    paths += sorted((shared_data / "livec-224" / "images").glob("*.jpg"))[:4]
    paths += sorted((shared_data / "cue-conflict" / "stimuli").glob("*/*.png"))[:2]
    for size in (32, 96, 300):  # down-, down- and upscaling
        reference = decode_images(paths, size, workers=1).astype(int)
        torch_path = decode_images_torch(paths, size, "cpu").astype(int)
        difference = np.abs(reference - torch_path)
        assert difference.max() <= 2 and difference.mean() < 0.01, (size, difference.max(), difference.mean())


def test_torch_resize_keeps_pil_geometry_for_a_wide_image():
    image = torch.arange(40 * 100 * 3, dtype=torch.int64).reshape(3, 40, 100).remainder(256).to(torch.uint8)
    assert resize_center_crop_tensor(image, 20).shape == (20, 20, 3)
    assert resize_center_crop_tensor(image, 40).tolist() == image[:, :, 30:70].permute(1, 2, 0).tolist()


def test_unknown_precision_and_missing_cuda_are_refused(tmp_path, capsys, shared_data):
    check_precision("fp32")
    check_precision("bf16")
    with pytest.raises(ClipdashError, match="choose one of fp32, bf16"):
        check_precision("fp16")
    base = ["--model", "tiny@/nowhere/", "--data-root", str(shared_data), "--db", str(tmp_path / "x.duckdb")]
    assert main([*base, "--device", "tpu"]) == 2
    assert "use cpu or cuda" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err


def test_bf16_warns_about_the_evaluations_it_moves_beyond_half_a_point(tmp_path, caplog, shared_data):
    from clipdash.precompute.cli import Job, build_parser

    base = ["--model", "x@/nowhere/", "--data-root", str(shared_data), "--db", str(tmp_path / "x.duckdb")]
    base += ["--device", "cpu"]
    with caplog.at_level(logging.WARNING, logger="clipdash.precompute"):
        Job(build_parser().parse_args([*base, "--precision", "bf16"]))
        Job(build_parser().parse_args([*base, "--precision", "bf16", "--evals", "zeroshot"]))
        Job(build_parser().parse_args([*base, "--evals", "livec"]))
    warnings_seen = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_seen) == 1
    assert "tid2013, livec, cue_conflict moved by more than 0.5 points" in warnings_seen[0]
    assert "run --evals tid2013,livec,cue_conflict with --precision fp32" in warnings_seen[0]


def test_bf16_weights_on_the_cpu_keep_the_logit_scale_and_the_embeddings(tiny_arch, one_torch_thread):
    from clipdash.models.loading import create_architecture

    cpu = torch.device("cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (16, 24, 24, 3), dtype=np.uint8)
    loaded = create_architecture(tiny_arch)
    prepare_model(loaded, cpu, "fp32")
    reference = encode_images(loaded, pixels, cpu, batch_size=8)
    scale = loaded.model.logit_scale.detach().clone()
    prepare_model(loaded, cpu, "bf16")
    params = dict(loaded.model.named_parameters())
    assert params["logit_scale"].dtype == torch.float32 and torch.equal(params["logit_scale"], scale)
    assert all(p.dtype == torch.bfloat16 for name, p in params.items() if name != "logit_scale")
    bf16 = encode_images(loaded, pixels, cpu, batch_size=8)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16.norm(dim=1), torch.ones(16))
    cosine = (bf16 * reference).sum(dim=1)
    # bf16 keeps 8 bits of mantissa: the embeddings move, but only slightly
    assert cosine.min() > 0.99 and not torch.equal(bf16, reference)


class ConvTower(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3))


def test_channels_last_only_for_conv_towers_on_cuda(tiny_arch):
    from clipdash.models.loading import create_architecture

    vit = create_architecture(tiny_arch).model
    assert uses_channels_last(ConvTower(), torch.device("cuda"))
    assert not uses_channels_last(ConvTower(), torch.device("cpu"))
    assert not uses_channels_last(vit, torch.device("cuda"))


def test_fp32_on_cpu_keeps_the_model_and_memory_maps_encode_like_arrays(
    tiny_arch, tmp_path, one_torch_thread
):
    from clipdash.models.loading import create_architecture

    loaded: LoadedModel = create_architecture(tiny_arch)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    prepare_model(loaded, torch.device("cpu"), "fp32")
    after = loaded.model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    pixels = np.random.default_rng(0).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    np.save(tmp_path / "p.npy", pixels)
    mapped = np.load(tmp_path / "p.npy", mmap_mode="r")
    cpu = torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        from_map = encode_images(loaded, mapped, cpu, batch_size=2)
    assert torch.equal(from_map, encode_images(loaded, pixels, cpu, batch_size=2))
    assert torch.equal(from_map, encode_images(loaded, torch.from_numpy(pixels), cpu, batch_size=2))
    assert from_map.shape == (5, 32) and torch.allclose(from_map.norm(dim=1), torch.ones(5))
    assert DevicePixels(cpu).get("p", pixels) is pixels


def test_rotated_cmyk_and_png_files_take_the_pil_path(tmp_path, one_torch_thread):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (10, 16, 3), dtype=np.uint8)
    plain, rotated, cmyk, png = (tmp_path / n for n in ("plain.jpg", "rotated.jpg", "cmyk.jpg", "p.png"))
    Image.fromarray(pixels).save(plain)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    Image.fromarray(pixels).save(rotated, exif=exif)
    Image.fromarray(pixels).convert("CMYK").save(cmyk)
    Image.fromarray(pixels).save(png)
    assert [device_decodable(p) for p in (plain, rotated, cmyk, png)] == [True, False, False, False]
    paths = [plain, rotated, cmyk, png]
    assert np.array_equal(decode_images_torch(paths, 8, "cpu")[1:], decode_images(paths, 8, workers=1)[1:])
