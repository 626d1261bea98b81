"""The measurement registry: every measurement is one module in this package defining ``MEASUREMENT``.

A module declares what the rest of clipdash derives from it: its name (the CLI's ``--evals`` choice),
the parameters that change its numbers (a dataclass, stored with every result), the image sets and data
folders it reads, a compute function on one checkpoint's embeddings, the per-item tables it writes, the
tables it shares across checkpoints, and its headline series (display names, CLI summary columns,
default curves, reference-line rules, panel titles). Modules are found with ``pkgutil``, so adding a
measurement is adding a module (and its test).

Importing the registry is cheap (no torch): compute functions import their arithmetic when they run,
because the dashboard reads these declarations too.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from clipdash.measurements.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from clipdash.evals.bootstrap import BootstrapConfig
    from clipdash.measurements.intervals import Replicates
    from clipdash.precompute.config import EngineConfig
    from clipdash.precompute.context import CheckpointContext, ClassifierContext
    from clipdash.precompute.inputs import RunInputs
    from clipdash.store.writer import EvalResult


@dataclass(frozen=True)
class ReferenceRule:
    """Published rows (``data/reference_values.csv``: ref_metric, ref_dataset) that measure what a series
    measures; ``complement`` draws 1 − value (texture bias = 1 − shape bias)."""

    ref_metric: str
    ref_dataset: str
    complement: bool = False


@dataclass(frozen=True)
class Series:
    """A headline curve: (metric, dataset, variant pattern of ``variant_matches``) and how it is shown.

    ``summary``: its column in the CLI summary; ``default_rank``: its place among the Curves page's
    default panels; ``paper_name``: the seed paper's Table 1 name; ``references``: published values.
    """

    metric: str
    dataset: str
    variant: str
    label: str
    summary: str | None = None
    default_rank: int | None = None
    paper_name: str | None = None
    references: tuple[ReferenceRule, ...] = ()


def no_files(inputs: RunInputs) -> None:
    """For measurements that read nothing besides their image sets."""


@dataclass(frozen=True)
class Measurement:
    """One measurement; see the package docstring. ``revision`` is bumped when a code change moves its
    numbers, so results of the old code are never resumed over."""

    name: str
    description: str
    params: Callable[[EngineConfig], Any]  # the measurement's own settings (a frozen dataclass)
    image_sets: Callable[[RunInputs], tuple[str, ...]]  # RunInputs keys it encodes
    data_folders: Callable[[EngineConfig], tuple[str, ...]]  # under --data-root: fingerprinted
    compute: Callable[[CheckpointContext, Any], EvalResult]
    tables: tuple[Table, ...] = ()
    series: tuple[Series, ...] = ()
    titles: dict[str, str] = field(default_factory=dict)  # metric -> panel title
    files: Callable[[RunInputs], object] = no_files  # loads other inputs, raising DatasetError
    shared_tables: Callable[[RunInputs], dict[str, pd.DataFrame]] | None = None
    #: Moved by more than 0.5 points with bf16 weights on the bundled run (CPU, benchmarks/
    #: precision_deltas.py): small image sets, where one changed decision or rank is worth more.
    bf16_sensitive: bool = False
    revision: int = 1
    #: ImageNet-1k classifier baselines (``timm:`` specs): the measurement on a classifier's 1000-way
    #: logits and the params stored with it; None where the measurement does not apply to a classifier.
    classifier_compute: Callable[[ClassifierContext, Any], EvalResult] | None = None
    classifier_params: Callable[[EngineConfig], Any] | None = None
    #: Bootstrap replicates of the headline numbers from one checkpoint's per-item tables and metric rows
    #: (``clipdash.measurements.intervals``); None where the items are not stored or not resampled.
    replicates: Callable[[dict[str, pd.DataFrame], pd.DataFrame, BootstrapConfig], Replicates] | None = None


@cache
def _registry() -> dict[str, Measurement]:
    found: dict[str, Measurement] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        measurement = getattr(importlib.import_module(f"{__name__}.{module.name}"), "MEASUREMENT", None)
        if measurement is None:
            continue
        if measurement.name in found:
            raise ValueError(f"two measurements are named {measurement.name!r}")
        found[measurement.name] = measurement
    return dict(sorted(found.items(), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else 99))


# The CLI's order (the seed paper's measurements first); measurements not listed come after, by name.
ORDER = ("zeroshot", "noise", "tid2013", "livec", "cue_conflict", "probe", "class_agnostic")


def list_measurements() -> list[str]:
    """Every registered measurement's name, in the CLI's order."""
    return list(_registry())


def get_measurement(name: str) -> Measurement:
    """The measurement named ``name``; an unknown name raises, listing the valid ones."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown measurement {name!r}; choose from {', '.join(registry)}")
    return registry[name]


def all_tables() -> tuple[Table, ...]:
    """Every per-item table of every measurement."""
    return tuple(table for m in _registry().values() for table in m.tables)


def all_series() -> list[tuple[Measurement, Series]]:
    """Every declared headline series with its measurement."""
    return [(m, s) for m in _registry().values() for s in m.series]


def default_curves() -> list[Series]:
    """The Curves page's default panels (the seed paper's four), in order."""
    ranked = [s for _, s in all_series() if s.default_rank is not None]
    return sorted(ranked, key=lambda s: s.default_rank)


def summary_series() -> list[tuple[Measurement, Series]]:
    """The CLI summary's columns, in registry order."""
    return [(m, s) for m, s in all_series() if s.summary]


def metric_titles() -> dict[str, str]:
    """Panel titles per metric name, from every measurement."""
    return {metric: title for m in _registry().values() for metric, title in m.titles.items()}
