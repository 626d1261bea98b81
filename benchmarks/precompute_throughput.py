"""Precompute throughput: the model-only ceiling, clipdash's engine, and a CLIP_benchmark-style loader.

One run, one model, one list of images (Imagenette val + CIFAR-10 test from ../shared/data by default,
12,000 images) and K checkpoints (the model's random weights, perturbed before each checkpoint):

(a) model only: random uint8 images already on the device, normalised and encoded by ``encode_images``
    (fp32 weights, under bf16 autocast on CUDA; then weights cast to bf16): the ceilings;
(b) clipdash: ``RunInputs`` decodes each dataset once into a fresh decoded-image cache (timed on its own,
    with a warm re-read), then per checkpoint ``CheckpointContext.features`` encodes every dataset;
(c) baseline, as CLIP_benchmark does it: per checkpoint a torch DataLoader (``num_workers`` = CPU cores)
    opens every file with PIL and applies open_clip's eval preprocess, then the forward pass (autocast on
    CUDA).

(a), (b) and (c) run interleaved, checkpoint by checkpoint, so a shared machine's load spikes hit all three
alike. It prints one table and the ratios b/a and b/c, and, unless ``--skip-probes``, times the
logistic-regression probe (scikit-learn on the CPU vs torch on the device) on the CIFAR-10 embeddings of
the last checkpoint. CIFAR-10 is decoded whole (10,000 images) whatever ``--limit`` says, as in clipdash.
Never part of the test suite.

    python benchmarks/precompute_throughput.py --device cpu --model clipdash-vit-t4-minilm
    python benchmarks/precompute_throughput.py --device cuda --model ViT-B-16 --checkpoints 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from clipdash.data.cifar import IMAGE_SUFFIXES
from clipdash.data.decode import decode_images, decode_images_torch
from clipdash.data.prompts import load_prompts
from clipdash.evals.linear_probe import linear_probe
from clipdash.evals.torch_probe import torch_linear_probe
from clipdash.models.configs import register_builtin_configs, register_model_config
from clipdash.models.encode import encode_images, prepare_model
from clipdash.models.loading import LoadedModel, create_architecture
from clipdash.precompute.cache import DecodedCache
from clipdash.precompute.context import CheckpointContext
from clipdash.precompute.inputs import RunInputs, first_per_class

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("imagenette", "cifar10")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default="clipdash-vit-t4-minilm", help="open_clip architecture name")
    parser.add_argument("--model-config", type=Path, action="append", default=[], metavar="FILE.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--checkpoints", type=int, default=3, help="K checkpoints encoded by (b) and (c)")
    parser.add_argument("--limit", type=int, default=None, help="at most N images per dataset")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CPU, 512 on CUDA")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="baseline DataLoader workers")
    parser.add_argument("--ceiling-images", type=int, default=4096, help="random images for (a)")
    parser.add_argument("--skip-probes", action="store_true", help="do not time the probes")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work) -> tuple[float, object]:
    """(seconds, result) of ``work()``, with the device synchronised on both sides."""
    sync(device)
    start = time.perf_counter()
    result = work()
    sync(device)
    return time.perf_counter() - start, result


class Checkpoints:
    """K stand-in checkpoints: the model's initial weights plus seeded noise, the same for (b) and (c)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def load(self, k: int) -> None:
        self.model.load_state_dict(self.initial)
        generator = torch.Generator().manual_seed(k)
        for param in self.model.parameters():
            if param.is_floating_point():
                param.add_(0.01 * torch.randn(param.shape, generator=generator).to(param))


def cifar_test_files(data_root: Path, limit: int | None) -> tuple[list[Path], np.ndarray]:
    """CIFAR-10 test files and labels in ``load_cifar``'s order, limited as ``RunInputs`` limits them."""
    classnames, _ = load_prompts("cifar10")
    paths, labels = [], []
    for label, name in enumerate(classnames):
        folder = data_root / "cifar10" / "test" / name.replace(" ", "_")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    keep = np.arange(len(paths))
    if limit is not None and len(paths) > limit:
        keep = first_per_class(np.asarray(labels), math.ceil(limit / len(classnames)))[:limit]
    return [paths[i] for i in keep], np.asarray(labels)[keep]


class FileImages(Dataset):
    """CLIP_benchmark's per-image path: PIL open + convert, then open_clip's eval transform."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


@torch.no_grad()
def baseline_features(
    loaded: LoadedModel, files: list[Path], device: torch.device, batch_size: int, workers: int
) -> torch.Tensor:
    """One checkpoint the CLIP_benchmark way: a fresh DataLoader, PIL decode + preprocess per image."""
    transform = open_clip.image_transform(loaded.image_size, is_train=False, mean=loaded.mean, std=loaded.std)
    loader = DataLoader(
        FileImages(files, transform),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    out = []
    for images in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            features = loaded.model.encode_image(images.to(device, non_blocking=True))
        out.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(out)


def random_pixels(loaded: LoadedModel, device: torch.device, n_images: int) -> torch.Tensor:
    """(a)'s input: random uint8 images already on the device."""
    size = loaded.image_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (n_images, size, size, 3), dtype=torch.uint8, generator=generator)
    return pixels.to(device)


def one_time_decode(args, loaded, device, cache_dir: Path, files_by_set) -> tuple[RunInputs, dict]:
    """(b)'s one-time part: decode into a fresh cache and upload; then a warm re-read of that cache."""

    def make_inputs() -> RunInputs:
        return RunInputs(
            args.data_root,
            loaded.image_size,
            args.limit,
            zeroshot_names=DATASETS,
            cache=DecodedCache(cache_dir),
            device=device,
        )

    inputs = make_inputs()
    decode_s, _ = timed(device, lambda: [inputs.pixels(key) for key in DATASETS])
    upload_s, _ = timed(device, lambda: [inputs.device_pixels(key) for key in DATASETS])
    warm = make_inputs()
    warm_s, _ = timed(device, lambda: [warm.pixels(key) for key in DATASETS])
    n_images = sum(len(inputs.pixels(key)) for key in DATASETS)
    if n_images != sum(len(files) for files in files_by_set.values()):
        raise RuntimeError("the engine and the baseline see different image lists")
    return inputs, {
        "images": n_images,
        "decode_s": decode_s,
        "upload_s": upload_s,
        "warm_cache_read_s": warm_s,
        "decoder": inputs.decoder,
        "cache_mib": sum(p.stat().st_size for p in cache_dir.iterdir()) / 2**20,
    }


def per_checkpoint(
    args, loaded, device, batch_size, inputs, files_by_set, checkpoints, with_baseline: bool
) -> tuple[dict, dict]:
    """(a), (b) and (c) interleaved checkpoint by checkpoint, so a shared machine's load hits all three."""
    n_images = sum(len(inputs.pixels(key)) for key in DATASETS)
    pixels = random_pixels(loaded, device, min(args.ceiling_images, n_images))
    encode_images(loaded, pixels[:batch_size], device, batch_size)  # warm-up
    times: dict[str, list[float]] = {"ceiling_s": [], "engine_s": [], "baseline_s": []}
    cosines, features = [], {}
    for k in range(args.checkpoints):
        checkpoints.load(k)
        seconds, _ = timed(device, lambda: encode_images(loaded, pixels, device, batch_size))
        times["ceiling_s"].append(seconds)
        ctx = CheckpointContext(loaded, inputs, None, device, batch_size, "clip")  # type: ignore[arg-type]
        seconds, features = timed(device, lambda ctx=ctx: {key: ctx.features(key) for key in DATASETS})
        times["engine_s"].append(seconds)
        if with_baseline:
            seconds, reference = timed(
                device,
                lambda: {
                    key: baseline_features(loaded, files, device, batch_size, args.workers)
                    for key, files in files_by_set.items()
                },
            )
            times["baseline_s"].append(seconds)
            cosines.append(torch.cat([(features[key] * reference[key]).sum(dim=1) for key in DATASETS]))
    rates = {"ceiling_images": len(pixels), **times}
    if cosines:
        rates["agreement_cosine"] = float(torch.cat(cosines).mean())
    return rates, features


def decode_difference(args, loaded, device, files_by_set) -> dict:
    """Grey-level difference between the device decoder (nvJPEG + torch resize) and PIL, on a sample."""
    sample = files_by_set["imagenette"][:: max(1, len(files_by_set["imagenette"]) // 256)]
    reference = decode_images(sample, loaded.image_size).astype(np.int16)
    on_device = decode_images_torch(sample, loaded.image_size, device).astype(np.int16)
    difference = np.abs(reference - on_device)
    return {"images": len(sample), "mean_abs": float(difference.mean()), "max_abs": int(difference.max())}


def probes(features: torch.Tensor, labels: np.ndarray, device: torch.device) -> list[dict]:
    """sklearn logreg / linear SVM on the CPU vs torch logreg on ``device``: half of each class trains."""
    train = first_per_class(labels, int(np.bincount(labels).min()) // 2)
    test = np.setdiff1d(np.arange(len(labels)), train)
    x = features.numpy()
    split = (x[train], labels[train], x[test], labels[test])
    rows = []
    for name, fit in (
        ("sklearn logreg (cpu)", lambda: linear_probe(*split, classifier="logreg")),
        ("sklearn linear_svm (cpu)", lambda: linear_probe(*split, classifier="linear_svm")),
        (f"torch logreg ({device.type})", lambda: torch_linear_probe(*split, device=device)),
    ):
        seconds, values = timed(device, fit)
        rows.append({"probe": name, "n_train": len(train), "seconds": seconds, "lp_acc1": values["lp_acc1"]})
    return rows


def rate(images: int, seconds: list[float]) -> float:
    """images/s over all checkpoints."""
    return images * len(seconds) / sum(seconds)


def report(results: dict) -> str:
    """The results as a Markdown table plus the ratios."""
    once, n, k = results["one_time"], results["one_time"]["images"], results["checkpoints"]
    one_time_s = once["decode_s"] + once["upload_s"]
    lines = [
        f"model {results['model']} ({results['image_size']} px), {results['device_name']}, "
        f"{n} images x {k} checkpoints, batch {results['batch_size']}",
        "",
        "| measurement | seconds | images/s |",
        "|---|---:|---:|",
        f"| (b) one-time decode ({once['decoder']}) + cache write + upload | {one_time_s:.1f} | "
        f"{n / one_time_s:,.0f} |",
        f"| (b) re-read of the warm cache ({once['cache_mib']:.0f} MiB) | "
        f"{once['warm_cache_read_s']:.2f} | |",
    ]
    ratios = []
    baseline = results["runs"]["fp32"]["baseline_s"]
    for precision, run in results["runs"].items():
        a, b = rate(run["ceiling_images"], run["ceiling_s"]), rate(n, run["engine_s"])
        engine_s = sum(run["engine_s"])
        lines += [
            f"| (a) model only, {precision} | | {a:,.0f} |",
            f"| (b) clipdash, {precision} | {engine_s:.1f} | {b:,.0f} |",
            f"| (b) clipdash, {precision}, incl. the one-time decode | {engine_s + one_time_s:.1f} | "
            f"{n * k / (engine_s + one_time_s):,.0f} |",
        ]
        ratios.append(f"b/a ({precision}) = {b / a:.2f}")
        if run["baseline_s"]:
            c = rate(n, run["baseline_s"])
            lines.append(
                f"| (c) DataLoader + PIL + preprocess ({results['workers']} workers), {precision} | "
                f"{sum(run['baseline_s']):.1f} | {c:,.0f} |"
            )
            ratios.append(
                f"b/c = {b / c:.1f}x (incl. the one-time decode, all {k} checkpoints: "
                f"{sum(run['baseline_s']) / (engine_s + one_time_s):.1f}x)"
            )
            ratios.append(f"embeddings (b) vs (c): mean cosine {run['agreement_cosine']:.4f}")
        elif baseline:
            ratios.append(f"b ({precision}) / c (fp32) = {b / rate(n, baseline):.1f}x")
    lines += ["", "; ".join(ratios)]
    if "decode_difference" in results:
        diff = results["decode_difference"]
        lines.append(
            f"device decoder vs PIL on {diff['images']} images: mean |diff| {diff['mean_abs']:.3f}, "
            f"max {diff['max_abs']} grey levels"
        )
    if results.get("probes"):
        lines += ["", "| probe (CIFAR-10 embeddings) | n_train | seconds | lp_acc1 |", "|---|---:|---:|---:|"]
        for row in results["probes"]:
            lines.append(
                f"| {row['probe']} | {row['n_train']} | {row['seconds']:.2f} | {row['lp_acc1']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    batch_size = args.batch_size or (512 if device.type == "cuda" else 256)
    register_builtin_configs()
    for path in args.model_config:
        register_model_config(path)
    loaded = create_architecture(args.model, device=str(device))
    prepare_model(loaded, device, "fp32")
    cifar_files, cifar_labels = cifar_test_files(args.data_root, args.limit)
    files_by_set = {
        "imagenette": RunInputs(args.data_root, loaded.image_size, args.limit).labeled("imagenette").images,
        "cifar10": cifar_files,
    }
    cpu_name = platform.processor() or platform.machine()
    results: dict = {
        "model": args.model,
        "image_size": loaded.image_size,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_name}",
        "cpu_cores": os.cpu_count(),
        "checkpoints": args.checkpoints,
        "batch_size": batch_size,
        "workers": args.workers,
        "runs": {},
    }
    checkpoints = Checkpoints(loaded.model)
    cache_dir = Path(tempfile.mkdtemp(prefix="clipdash-bench-cache-"))
    try:
        inputs, results["one_time"] = one_time_decode(args, loaded, device, cache_dir, files_by_set)
        results["runs"]["fp32"], features = per_checkpoint(
            args, loaded, device, batch_size, inputs, files_by_set, checkpoints, with_baseline=True
        )
        if device.type == "cuda":
            results["decode_difference"] = decode_difference(args, loaded, device, files_by_set)
        if not args.skip_probes:
            results["probes"] = probes(features["cifar10"], cifar_labels, device)
        prepare_model(loaded, device, "bf16")
        results["runs"]["bf16"], _ = per_checkpoint(
            args, loaded, device, batch_size, inputs, files_by_set, checkpoints, with_baseline=False
        )
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
