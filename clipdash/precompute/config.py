"""The engine's typed configuration: what a precompute needs besides the model specs and the database.

Built from the command line once (``clipdash.precompute.cli``) and checked here, so the planner, the
executor and any backend take this object instead of an argparse namespace. It is plain data (paths,
numbers, tuples), so it pickles to another process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from clipdash.data.prompts import TEMPLATE_SETS as PROMPT_TEMPLATE_SETS
from clipdash.errors import ClipdashError
from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.measurements import list_measurements as list_evaluations
from clipdash.models.encode import check_precision
from clipdash.precompute.inputs import SplitSizes

DEFAULT_BATCH = {"cpu": 256, "cuda": 512}
TEMPLATE_SETS = tuple(PROMPT_TEMPLATE_SETS)  # clip, seed, photo


def parse_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:N]`` as a torch device; a CUDA device that is not there is a clear error."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ClipdashError(f"unknown device {name!r}; use cpu or cuda[:N]") from exc
    if device.type not in DEFAULT_BATCH:
        raise ClipdashError(f"unsupported device {name!r}; use cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ClipdashError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device


@dataclass(frozen=True)
class EngineConfig:
    """How checkpoints are evaluated; ``__post_init__`` refuses what cannot run, with one sentence."""

    data_root: Path
    evals: tuple[str, ...]
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int | None = None  # None: DEFAULT_BATCH of the device type
    templates: str = "clip"
    zeroshot_names: tuple[str, ...] = ("cifar10", "cifar100", "imagenette")
    limit: int | None = None
    splits: SplitSizes = field(default_factory=SplitSizes)
    noise_seed: int = 0
    noise_dataset: str = "cifar10"  # the clean set noise is added to: cifar10 (CIFAR-10-C) or imagenette
    ood_id: str = "cifar10"  # the in-distribution set of ``ood``: cifar10 or imagenette
    download: bool = False
    cache_dir: Path | None = None  # None: no decoded-image cache
    gpu_decode: bool = True  # nvJPEG for JPEGs when the device is CUDA
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)  # intervals stored with the numbers

    def __post_init__(self) -> None:
        if not self.evals:
            raise ClipdashError(f"--evals names no evaluation; choose from {', '.join(list_evaluations())}")
        unknown = sorted(set(self.evals) - set(list_evaluations()))
        if unknown:
            raise ClipdashError(
                f"unknown evaluation(s) {', '.join(unknown)}; choose from {', '.join(list_evaluations())}"
            )
        if self.templates not in TEMPLATE_SETS:
            raise ClipdashError(f"unknown template set {self.templates!r}; choose from {TEMPLATE_SETS}")
        for option, value in (("--noise-dataset", self.noise_dataset), ("--ood-id", self.ood_id)):
            if value not in ("cifar10", "imagenette"):
                raise ClipdashError(f"{option} {value!r}: choose cifar10 or imagenette")
        check_precision(self.precision)
        parse_device(self.device)
        if not Path(self.data_root).is_dir():
            raise ClipdashError(f"data root not found: {self.data_root}")

    def for_classifier(self) -> EngineConfig:
        """The configuration an ImageNet-1k classifier runs under: its noise and OOD protocols are on
        Imagenette (it has no CIFAR-10 head), whatever the CLIP runs of the job use."""
        return dataclasses.replace(self, noise_dataset="imagenette", ood_id="imagenette")

    @property
    def torch_device(self) -> torch.device:
        return parse_device(self.device)

    @property
    def decoder(self) -> str:
        """``nvjpeg`` (JPEGs decoded on the CUDA device) or ``pil``: stored with every setting."""
        return "nvjpeg" if self.gpu_decode and self.torch_device.type == "cuda" else "pil"

    @property
    def batch(self) -> int:
        """Images per forward pass."""
        return self.batch_size or DEFAULT_BATCH[self.torch_device.type]
