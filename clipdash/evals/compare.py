"""Many models side by side (Tu et al.'s holistic robustness; the probit axes of Taori et al.): one
measurement against another per checkpoint, a robust line per model group, and how well each line fits.

Inputs are plain arrays or the tidy frames of ``clipdash.store.queries.comparison_points``; NaN (never 0)
marks a number that is undefined, e.g. a fit through fewer than 3 points.

SciPy and scikit-learn are imported where they are used, not with this module: ``sklearn.linear_model``
(which imports ``scipy.stats``) takes 1–2 s to import in a fresh process, and the Compare page draws its
points before that (see :func:`fit_libraries_loaded`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clipdash.evals.stats import MIN_PAIRS, as_numpy, spearman

PROBIT_EPS = 1e-4  # probit(0) and probit(1) are infinite: values are clipped to [eps, 1 − eps] first
# Huber's threshold in units of the fitted residual scale: sklearn's default, 95 % as efficient as least
# squares on Gaussian noise while points further out count linearly, not quadratically.
HUBER_EPSILON = 1.35
TRAJECTORY = "CLIP trajectory"
# The runs table's ``source`` -> model group; every other source ('directory', 'file') is a trajectory.
SOURCE_GROUPS = {"pretrained": "pretrained CLIP", "classifier": "ImageNet classifier"}
GROUPS = (TRAJECTORY, *SOURCE_GROUPS.values())  # in legend order
CHECKPOINTS = ("all", "last", "epoch")  # which checkpoints of a trajectory pick_checkpoints keeps
_FIT_LIBRARIES = threading.Event()  # set once load_fit_libraries has imported them in this process


def load_fit_libraries() -> None:
    """Import what :func:`huber_fit` needs (scikit-learn's linear models, SciPy's statistics): 1–2 s the
    first time in a process, nothing after. Called by the fits and by the dashboard's prewarm thread."""
    import scipy.stats  # noqa: F401  (spearman's rankdata)
    import sklearn.linear_model  # noqa: F401

    _FIT_LIBRARIES.set()


def fit_libraries_loaded() -> bool:
    """Whether :func:`load_fit_libraries` has finished in this process, so a fit starts at once; a page
    can draw its points first while it has not (an import under way in another thread counts as not)."""
    return _FIT_LIBRARIES.is_set()


def model_group(source: str) -> str:
    """The model group of a run, from its ``source`` column: pretrained CLIP, ImageNet classifier, or
    CLIP trajectory (a training folder or a lone checkpoint file)."""
    return SOURCE_GROUPS.get(source, TRAJECTORY)


def probit_applicable(values: Any) -> bool:
    """Whether ``values`` look like accuracies: some are finite and every finite one lies in [0, 1]."""
    array = as_numpy(values).ravel()
    finite = array[np.isfinite(array)]
    return bool(finite.size) and bool(((finite >= 0) & (finite <= 1)).all())


def probit(values: Any) -> np.ndarray:
    """The standard normal quantile (SciPy's ``special.ndtri``, which ``scipy.stats.norm.ppf`` computes,
    without importing ``scipy.stats``) of accuracy-like values in [0, 1], clipped to
    [:data:`PROBIT_EPS`, 1 − PROBIT_EPS] so 0 and 1 stay finite (±3.72); NaN stays NaN.

    On probit axes, models that share a distribution shift tend to fall on a line (Taori et al. 2020).
    Values outside [0, 1] raise ValueError: they are not accuracies and clipping would hide that.
    """
    from scipy.special import ndtri

    array = as_numpy(values)
    finite = array[np.isfinite(array)]
    if ((finite < 0) | (finite > 1)).any():
        raise ValueError(
            f"probit needs values in [0, 1] (accuracies); got {finite.min():.4g} … {finite.max():.4g}"
        )
    return ndtri(np.clip(array, PROBIT_EPS, 1 - PROBIT_EPS))


@dataclass(frozen=True)
class LineFit:
    """A robust line y = slope · x + intercept through ``n`` points, with Spearman ρ of the points and
    R² = 1 − SS_res / SS_tot of the line on them (NaN when undefined)."""

    n: int
    slope: float
    intercept: float
    spearman: float
    r2: float


def huber_fit(x: Any, y: Any) -> LineFit:
    """Huber-loss linear fit (scikit-learn's ``HuberRegressor``, epsilon :data:`HUBER_EPSILON`, no L2
    penalty) of paired values, over the pairs where both are finite.

    Everything but ``n`` is NaN with fewer than 3 pairs or a constant ``x``; R² also with a constant ``y``.
    """
    x_array, y_array = as_numpy(x).ravel(), as_numpy(y).ravel()
    if x_array.shape != y_array.shape:
        raise ValueError(f"paired inputs differ in length: {x_array.size} vs {y_array.size}")
    finite = np.isfinite(x_array) & np.isfinite(y_array)
    x_array, y_array = x_array[finite], y_array[finite]
    n = int(x_array.size)
    if n < MIN_PAIRS or np.all(x_array == x_array[0]):
        return LineFit(n, math.nan, math.nan, math.nan, math.nan)
    load_fit_libraries()
    from sklearn.linear_model import HuberRegressor

    model = HuberRegressor(epsilon=HUBER_EPSILON, alpha=0.0, max_iter=1000).fit(x_array[:, None], y_array)
    slope, intercept = float(model.coef_[0]), float(model.intercept_)
    residual = y_array - (slope * x_array + intercept)
    total = float(np.sum((y_array - y_array.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else math.nan
    return LineFit(n, slope, intercept, spearman(x_array, y_array), r2)


def group_fits(points: pd.DataFrame, x: str = "x", y: str = "y", by: str = "group") -> pd.DataFrame:
    """One :func:`huber_fit` per value of ``points[by]``: columns ``by``, n, slope, intercept, spearman, r2,
    plus x_min and x_max (the x range of the group's finite pairs, where its line is drawn)."""
    rows = []
    for group, part in points.groupby(by, sort=False):
        fit = huber_fit(part[x], part[y])
        present = part[np.isfinite(part[x].astype(float)) & np.isfinite(part[y].astype(float))]
        rows.append({by: group, **vars(fit), "x_min": present[x].min(), "x_max": present[x].max()})
    columns = [by, "n", "slope", "intercept", "spearman", "r2", "x_min", "x_max"]
    return pd.DataFrame(rows, columns=columns)


def fit_lines(fits: pd.DataFrame, by: str = "group") -> pd.DataFrame:
    """Each defined fit of :func:`group_fits` as two points (``by``, x, y) at the ends of its x range."""
    defined = fits.dropna(subset=["slope", "intercept"])
    ends = pd.concat([defined.assign(x=defined["x_min"]), defined.assign(x=defined["x_max"])])
    ends = ends.assign(y=ends["slope"] * ends["x"] + ends["intercept"])
    return ends[[by, "x", "y"]].sort_values([by, "x"], kind="stable").reset_index(drop=True)


def training_fraction(epoch: pd.Series, last_epoch: pd.Series) -> pd.Series:
    """epoch / last epoch of the run: 0 at the first checkpoint, 1 at the last, so runs of different
    lengths share an axis. NaN for models outside a trajectory (epoch −1) and runs with one epoch 0."""
    epoch, last_epoch = epoch.astype(float), last_epoch.astype(float)
    return (epoch / last_epoch).where((epoch >= 0) & (last_epoch > 0))


def label_points(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (columns run, epoch, source, last_epoch, as the comparison queries return them) with each
    row's model ``group`` and training ``fraction``."""
    return frame.assign(
        group=frame["source"].map(model_group),
        fraction=training_fraction(frame["epoch"], frame["last_epoch"]),
    )


def axis_values(points: pd.DataFrame, probit_x: bool, probit_y: bool) -> pd.DataFrame:
    """``points`` with the plotted coordinates ``x_axis`` and ``y_axis``: x and y, probit-transformed
    where asked (see :func:`probit`)."""
    return points.assign(
        x_axis=probit(points["x"]) if probit_x else points["x"].astype(float),
        y_axis=probit(points["y"]) if probit_y else points["y"].astype(float),
    )


def pick_checkpoints(points: pd.DataFrame, which: str, epoch: int | None = None) -> pd.DataFrame:
    """The rows of ``points`` (columns run, epoch) to draw: every checkpoint (``'all'``), each trajectory's
    last one in ``points`` (``'last'``), or those at ``epoch`` (``'epoch'``). Models outside a trajectory
    (epoch −1) are always kept."""
    if which not in CHECKPOINTS:
        raise ValueError(f"unknown checkpoint choice {which!r}; choose from {', '.join(CHECKPOINTS)}")
    if which == "all":
        return points
    if which == "last":
        keep = points["epoch"] == points.groupby("run")["epoch"].transform("max")
    elif epoch is None:
        raise ValueError("pick_checkpoints(which='epoch') needs an epoch")
    else:
        keep = points["epoch"] == epoch
    return points[keep | (points["epoch"] < 0)]
