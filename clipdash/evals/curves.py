"""Training curves side by side: do two measurements rise and fall together over epochs, and where does
each one peak? Input is a DataFrame indexed by epoch with one column per named curve (NaN = not measured),
and for the intervals, per curve a B × epochs array of bootstrap replicates of the whole curve."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from clipdash.evals.bootstrap import percentile_interval
from clipdash.evals.stats import pearson


def curve_correlations(curves: pd.DataFrame) -> pd.DataFrame:
    """Pearson matrix between the curves, each pair over the epochs where both have a value.

    NaN where a pair shares fewer than 3 epochs or one side is constant there (the diagonal included).
    """
    names = list(curves.columns)
    matrix = pd.DataFrame(np.nan, index=pd.Index(names), columns=pd.Index(names), dtype=float)
    for i, first in enumerate(names):
        for second in names[i:]:
            present = curves[first].notna() & curves[second].notna()
            value = pearson(curves.loc[present, first], curves.loc[present, second])
            matrix.loc[first, second] = matrix.loc[second, first] = value
    return matrix


def peak_epochs(curves: pd.DataFrame) -> pd.Series:
    """The epoch of each curve's maximum (the first one on ties); NaN for a curve with no values."""
    return pd.Series(
        {name: curves[name].idxmax() if curves[name].notna().any() else math.nan for name in curves.columns},
        dtype=float,
    )


def minmax_normalise(series: pd.Series) -> pd.Series:
    """Rescale to 0..1 (NaN stays NaN), so curves in different units share one axis.

    A constant or empty series has no range and becomes all NaN.
    """
    low, high = series.min(), series.max()
    if not high > low:
        return pd.Series(np.nan, index=series.index, name=series.name, dtype=float)
    return (series - low) / (high - low)


# --- uncertainty: bootstrap replicates of whole curves (issue 14) ---------------------------------------
#
# A curve's replicates are a B × E array: row b is the curve recomputed with the b-th bootstrap resample
# of every epoch's items (``clipdash.measurements.<m>.replicates``; the resample counts depend only on the
# seed and the number of items, so one epoch's items are drawn alike at every epoch of a run). Anything
# computed from whole curves (Pearson r, partial r, the peak epoch) is computed once per row, and its
# percentile interval is that of the B results.

#: The range a metric can take, for judging how wide an interval is. Metrics not listed (NLL, entropies,
#: temperatures, the modality gap) are unbounded here, and their curves are never faded.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("plcc", "srcc", "mean_cosine"), (-1.0, 1.0)),
    **dict.fromkeys(
        (
            "acc1",
            "acc5",
            "mean_per_class_recall",
            "lp_acc1",
            "lp_mean_per_class_recall",
            "ca_acc1",
            "shape_bias",
            "texture_bias",
            "shape_fraction",
            "texture_fraction",
            "ece",
            "ece_ts",
            "auroc",
            "fpr95",
            "noise_drop",
        ),
        (0.0, 1.0),
    ),
}
#: A curve whose median interval is wider than this fraction of its metric's range is drawn faded.
FADE_FRACTION = 0.5
_KEYS = ["run", "metric", "dataset", "variant"]


def metric_range(metric: str) -> tuple[float, float] | None:
    """The possible range of ``metric`` (correlations [−1, 1]; accuracies, fractions, biases, ECE, AUROC,
    FPR and the noise drop [0, 1]); None for an unbounded metric such as NLL."""
    return METRIC_RANGES.get(metric)


def interval_spans(curves: pd.DataFrame, fade_fraction: float = FADE_FRACTION) -> pd.DataFrame:
    """Per curve (run, metric, dataset, variant) of a frame with ``ci_low``, ``ci_high`` and ``n``: the
    median number of items ``n``, the median interval width, the metric's range (``range_low``,
    ``range_high``; NaN when unbounded), the median width as a fraction of it (``span``), and ``faded``:
    whether that fraction exceeds ``fade_fraction``. Epochs without an interval are left out; a curve with
    none has NaN widths and is not faded."""
    columns = [*_KEYS, "n", "width", "range_low", "range_high", "span", "faded"]
    rows = []
    for key, group in curves.groupby(_KEYS, sort=False):
        width = (group["ci_high"] - group["ci_low"]).astype(float)
        width = width[np.isfinite(width)]
        n = pd.to_numeric(group["n"], errors="coerce").dropna()
        bounds = metric_range(key[1])
        median_width = float(width.median()) if len(width) else math.nan
        span = median_width / (bounds[1] - bounds[0]) if bounds is not None else math.nan
        low, high = bounds if bounds is not None else (math.nan, math.nan)
        rows.append((*key, float(n.median()) if len(n) else math.nan, median_width, low, high, span))
    frame = pd.DataFrame(rows, columns=columns[:-1])
    return frame.assign(faded=frame["span"].gt(fade_fraction)).reindex(columns=columns)


def normalise_curves(curves: pd.DataFrame, columns: tuple[str, ...] = ("value", "ci_low", "ci_high")):
    """Each curve (run, metric, dataset, variant) min–max normalised by its own values' range: ``value``
    to 0..1 (as :func:`minmax_normalise`), and the other ``columns`` present (the interval's bounds) with
    the same minimum and maximum, so a band keeps its place around its curve (and may leave 0..1)."""
    grouped = curves.groupby(_KEYS, sort=False)["value"]
    low, high = grouped.transform("min"), grouped.transform("max")
    scale = (high - low).where(high > low)
    return curves.assign(**{c: (curves[c] - low) / scale for c in columns if c in curves.columns})


def rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``x`` with the same row of ``y`` (B × E), over the columns where both are
    finite; NaN where fewer than 3 are, or one side is constant there (as ``clipdash.evals.stats.pearson``).
    """
    x, y = np.atleast_2d(np.asarray(x, np.float64)), np.atleast_2d(np.asarray(y, np.float64))
    if x.shape != y.shape:
        raise ValueError(f"curves differ in shape: {x.shape} vs {y.shape}")
    both = np.isfinite(x) & np.isfinite(y)
    count = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(both, x, 0).sum(axis=1) / count
        my = np.where(both, y, 0).sum(axis=1) / count
        cx = np.where(both, x - mx[:, None], 0.0)
        cy = np.where(both, y - my[:, None], 0.0)
        sxx, syy = (cx * cx).sum(axis=1), (cy * cy).sum(axis=1)
        r = (cx * cy).sum(axis=1) / np.sqrt(sxx * syy)
        # a constant side leaves rounding noise, not 0: compare its spread with its size
        x_scale = np.where(both, x * x, 0).sum(axis=1)
        y_scale = np.where(both, y * y, 0).sum(axis=1)
    constant = (sxx <= 1e-24 * x_scale) | (syy <= 1e-24 * y_scale)
    return np.where((count < 3) | constant, np.nan, np.clip(r, -1.0, 1.0))


def correlation_replicates(curves_b: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """For each pair of curves (in the given order, first < second), the B Pearson r of their replicates:
    row b of one curve against row b of the other, over the epochs where both are finite."""
    names = list(curves_b)
    return {
        (first, second): rowwise_pearson(curves_b[first], curves_b[second])
        for i, first in enumerate(names)
        for second in names[i + 1 :]
    }


def partial_correlation(r_xy, r_xz, r_yz):
    """Partial correlation of x and y given z from the three Pearson r (scalars or arrays alike):
    (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)); NaN where z explains x or y entirely (|r| = 1)."""
    r_xy, r_xz, r_yz = (np.asarray(r, np.float64) for r in (r_xy, r_xz, r_yz))
    denominator = (1 - r_xz**2) * (1 - r_yz**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        partial = np.where(denominator > 1e-12, (r_xy - r_xz * r_yz) / np.sqrt(denominator), np.nan)
    partial = np.clip(partial, -1.0, 1.0)
    return float(partial) if partial.ndim == 0 else partial


def _partial_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Row-wise partial r of x and y given z, all three over the epochs where all three are finite."""
    x, y, z = (np.atleast_2d(np.asarray(a, np.float64)) for a in (x, y, z))
    common = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = (np.where(common, a, np.nan) for a in (x, y, z))
    return partial_correlation(rowwise_pearson(x, y), rowwise_pearson(x, z), rowwise_pearson(y, z))


TABLE1_COLUMNS = [
    "first",
    "second",
    "r",
    "r_low",
    "r_high",
    "partial_r",
    "partial_low",
    "partial_high",
    "n_epochs",
    "resamples",
]


def correlation_table(
    curves: pd.DataFrame,
    replicates: dict[str, np.ndarray] | None = None,
    control: str | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Table 1 with intervals: one row per pair of curves (columns of ``curves``, indexed by epoch, in
    their order): Pearson r over the epochs both have, its percentile-bootstrap interval from
    ``replicates`` (curve → B × epochs array, columns aligned with ``curves.index``; a curve without
    replicates gets no interval), the partial correlation given the ``control`` curve (over the epochs
    all three have) with its interval from the same replicates, the number of epochs r is taken over,
    and the number of replicates whose r is finite (``resamples``). Pairs with the control curve itself
    have no partial r."""
    replicates = replicates or {}
    names = list(curves.columns)
    values = {name: curves[name].to_numpy(np.float64)[None, :] for name in names}
    rows = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            x, y = values[first], values[second]
            both = np.isfinite(x) & np.isfinite(y)
            r = float(rowwise_pearson(x, y)[0])
            r_low = r_high = partial_low = partial_high = math.nan
            partial = math.nan
            resamples = 0
            paired = first in replicates and second in replicates
            if paired:
                r_b = rowwise_pearson(replicates[first], replicates[second])
                r_low, r_high = percentile_interval(r_b, level)
                resamples = int(np.isfinite(r_b).sum())
            if control is not None and control in values and control not in (first, second):
                partial = float(_partial_rows(x, y, values[control])[0])
                if paired and control in replicates:
                    partial_b = _partial_rows(replicates[first], replicates[second], replicates[control])
                    partial_low, partial_high = percentile_interval(partial_b, level)
            rows.append(
                (
                    first,
                    second,
                    r,
                    r_low,
                    r_high,
                    partial,
                    partial_low,
                    partial_high,
                    int(both.sum()),
                    resamples,
                )
            )
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def peak_distribution(replicates: dict[str, np.ndarray], epochs, by_epoch: int | None = None) -> pd.DataFrame:
    """Per curve, the bootstrap distribution of its peak epoch (the argmax over epochs of each replicate
    curve, the first on ties; replicates without a finite value are left out): the most likely peak
    epoch, P(peak = that epoch), P(peak ≤ ``by_epoch``) when given, and the number of replicates."""
    epochs = np.asarray(epochs)
    rows = []
    for name, curves_b in replicates.items():
        curves_b = np.atleast_2d(np.asarray(curves_b, np.float64))
        valid = np.isfinite(curves_b).any(axis=1)
        peaks = epochs[np.argmax(np.where(np.isfinite(curves_b[valid]), curves_b[valid], -np.inf), axis=1)]
        if peaks.size == 0:
            rows.append((name, math.nan, math.nan, math.nan, 0))
            continue
        found, counts = np.unique(peaks, return_counts=True)
        mode = int(found[np.argmax(counts)])  # np.unique sorts: the earliest epoch on ties
        by = float(np.mean(peaks <= by_epoch)) if by_epoch is not None else math.nan
        rows.append((name, mode, float(counts.max() / peaks.size), by, int(peaks.size)))
    return pd.DataFrame(
        rows, columns=["curve", "likely_peak", "p_likely_peak", "p_peak_by", "resamples"]
    ).astype({"resamples": int})
