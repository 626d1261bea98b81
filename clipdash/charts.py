"""Altair chart builders for the dashboard pages, plus PNG/SVG export and cue-conflict thumbnails.

Each builder takes tidy DataFrames (as the named queries in ``clipdash.store.queries`` return them) and
returns an Altair chart; nothing here imports streamlit, so the charts can be built and checked in tests.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import NormalDist

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

from clipdash.measurements import metric_titles

CUE_COLOURS = {"shape": "#2b6cb0", "texture": "#dd6b20", "other": "#a0aec0"}
_CUE_SCALE = alt.Scale(domain=list(CUE_COLOURS), range=list(CUE_COLOURS.values()))
REFERENCE_COLOUR = "#718096"
HUMANS = "humans (mean of subjects; grey: each subject)"
EPOCH_AXIS = alt.Axis(tickMinStep=1, format="d")
# Accuracies marked on a probit axis; the labels turn the axis's probit values back into accuracies.
PROBIT_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
PARAMS_SCALE = alt.Scale(type="log", range=[25, 300])  # model sizes span orders of magnitude
MAX_RUN_COLOURS = 10  # run_curves colours lines by run up to this many runs, by model group beyond
SOFTMAX_COS = "softmax(logit scale · cos)"  # the probe's CLIP probabilities


def series_label(metric: str, dataset: str, variant: str) -> str:
    """A short legend label for one stored series: 'metric · dataset · variant'."""
    return " · ".join(part for part in (metric, dataset, variant) if part)


def _finish(chart: alt.TopLevelMixin, title: str, height: int) -> alt.TopLevelMixin:
    """Title and plot height; the width follows the page (``fit-x``), so legends never squash the plot."""
    return chart.properties(
        title=title, height=height, autosize=alt.AutoSizeParams(type="fit-x", contains="padding")
    )


def metric_title(metric: str) -> str:
    """A panel title for a metric name, as its measurement declares it (the name itself otherwise)."""
    return metric_titles().get(metric, metric)


def _short_series(frame: pd.DataFrame) -> pd.Series:
    """Series labels without the parts every series in ``frame`` shares (metric, dataset, variant pairs)."""
    parts = [
        [f"metric={m}", f"dataset={d}", *(part for part in v.split(";") if part)]
        for m, d, v in zip(frame["metric"], frame["dataset"], frame["variant"], strict=True)
    ]
    shared = set.intersection(*(set(p) for p in parts)) if parts else set()
    labels = [
        " · ".join(
            x.split("=", 1)[1] if x.startswith(("metric=", "dataset=")) else x for x in p if x not in shared
        )
        for p in parts
    ]
    return pd.Series(
        [label or m for label, m in zip(labels, frame["metric"], strict=True)], index=frame.index
    )


def _curve_names(frame: pd.DataFrame) -> pd.Series:
    """Legend entries: the run when one series is shown, the series when one run, else both."""
    series = _short_series(frame)
    if series.nunique() <= 1:
        return frame["run"]
    if frame["run"].nunique() <= 1:
        return series
    return frame["run"] + " — " + series


def curve_panel(
    curves: pd.DataFrame,
    title: str,
    y_title: str,
    references: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """Per-epoch curves (columns run, metric, dataset, variant, epoch, value), one line per run and series.

    Rows with epoch −1 (models outside a trajectory, e.g. pretrained) are drawn as dashed horizontal lines
    in their curve's colour; ``references`` rows (model, value, protocol, source) as grey dotted rules,
    told apart by their dash pattern.

    Optional columns: ``ci_low``/``ci_high`` draw each curve's interval as a translucent band in its colour
    (a horizontal strip behind an epoch −1 rule), under the lines, where they are finite; ``n`` and the
    bounds join the tooltips; ``faded`` (bool) draws that curve's line and band fainter, with its
    ``legend_note`` (e.g. "n = 7 image pairs") appended to its legend entry.
    """
    curves = curves.assign(curve=_curve_names(curves) if len(curves) else "")
    if "faded" in curves.columns:
        curves["faded"] = curves["faded"].fillna(False).astype(bool)
        if "legend_note" in curves.columns:
            noted = curves["faded"] & curves["legend_note"].fillna("").astype(str).ne("")
            curves.loc[noted, "curve"] = (
                curves.loc[noted, "curve"] + " (" + curves.loc[noted, "legend_note"] + ")"
            )
    colour = alt.Color("curve:N", title=None, legend=alt.Legend(orient="top", columns=1, labelLimit=400))
    tooltip = ["run:N", "dataset:N", "variant:N", "epoch:Q", alt.Tooltip("value:Q", format=".4f")]
    if "n" in curves.columns:
        tooltip.append(alt.Tooltip("n:Q", title="n (items)", format=","))
    bounds = [c for c in ("ci_low", "ci_high") if c in curves.columns]
    tooltip += [alt.Tooltip(f"{c}:Q", title=f"95 % CI {c[3:]}", format=".4f") for c in bounds]
    faded = "faded" in curves.columns
    line_opacity = alt.condition("datum.faded", alt.value(0.3), alt.value(1.0)) if faded else alt.Undefined
    band_opacity = alt.condition("datum.faded", alt.value(0.07), alt.value(0.2)) if faded else alt.value(0.2)
    trajectory = curves[curves["epoch"] >= 0]
    pretrained = curves[curves["epoch"] < 0]
    layers: list[alt.Chart] = []
    if len(bounds) == 2:
        banded = np.isfinite(curves["ci_low"].astype(float)) & np.isfinite(curves["ci_high"].astype(float))
        if banded[curves["epoch"] >= 0].any():
            layers.append(
                alt.Chart(trajectory[banded[curves["epoch"] >= 0]])
                .mark_area()
                .encode(
                    x=alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS),
                    y=alt.Y("ci_low:Q", title=y_title, scale=alt.Scale(zero=False)),
                    y2="ci_high:Q",
                    color=colour,
                    opacity=band_opacity,
                    tooltip=tooltip,
                )
            )
        if banded[curves["epoch"] < 0].any():
            layers.append(
                alt.Chart(pretrained[banded[curves["epoch"] < 0]])
                .mark_rect()
                .encode(y="ci_low:Q", y2="ci_high:Q", color=colour, opacity=band_opacity, tooltip=tooltip)
            )
    line = (
        alt.Chart(trajectory)
        .mark_line(point=alt.OverlayMarkDef(size=25))
        .encode(
            x=alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS),
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=colour,
            opacity=line_opacity,
            tooltip=tooltip,
        )
    )
    layers.append(line)
    if len(pretrained):
        layers.append(
            alt.Chart(pretrained)
            .mark_rule(strokeDash=[6, 3], strokeWidth=2)
            .encode(y="value:Q", color=colour, opacity=line_opacity, tooltip=tooltip)
        )
    if references is not None and len(references):
        layers.append(
            alt.Chart(references)
            .mark_rule(color=REFERENCE_COLOUR)
            .encode(
                y="value:Q",
                strokeDash=alt.StrokeDash(
                    "model:N",
                    title="published",
                    legend=alt.Legend(orient="bottom", columns=1, labelLimit=400),
                ),
                tooltip=["model:N", alt.Tooltip("value:Q", format=".4f"), "protocol:N", "source:N"],
            )
        )
    return _finish(alt.layer(*layers).resolve_legend(strokeDash="independent"), title, 240)


def correlation_heatmap(
    matrix: pd.DataFrame, peaks: pd.Series | None = None, intervals: pd.DataFrame | None = None
) -> alt.LayerChart:
    """Pearson r between curves (square frame from ``curve_correlations``), cells labelled with r.

    ``peaks`` (curve → epoch of its maximum) is appended to the row labels; ``intervals`` (columns first,
    second, r_low, r_high, as ``clipdash.evals.curves.correlation_table`` gives them) join the tooltips.
    """
    names = [str(name) for name in matrix.index]
    rows = names
    if peaks is not None:
        rows = [f"{name} (peak @ {peaks[name]:.0f})" if pd.notna(peaks.get(name)) else name for name in rows]
    tidy = (
        matrix.set_axis(rows, axis=0)
        .rename_axis(index="curve")
        .reset_index()
        .melt(id_vars="curve", var_name="against", value_name="r")
    )
    tooltip = ["curve:N", "against:N", alt.Tooltip("r:Q", format=".3f")]
    if intervals is not None and len(intervals):
        bounds = {}
        for row in intervals.itertuples():
            bounds[(row.first, row.second)] = bounds[(row.second, row.first)] = (row.r_low, row.r_high)
        name_of = dict(zip(rows, names, strict=True))
        pairs = zip(tidy["curve"].map(name_of), tidy["against"], strict=True)
        found = [bounds.get(pair, (np.nan, np.nan)) for pair in pairs]
        tidy["r_low"], tidy["r_high"] = [b[0] for b in found], [b[1] for b in found]
        tooltip += [alt.Tooltip(f"r_{e}:Q", title=f"95 % CI {e}", format=".3f") for e in ("low", "high")]
    base = alt.Chart(tidy).encode(
        x=alt.X(
            "against:N", title=None, sort=list(matrix.columns), axis=alt.Axis(labelAngle=-30, labelLimit=220)
        ),
        y=alt.Y("curve:N", title=None, sort=rows, axis=alt.Axis(labelLimit=260)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "r:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True), title="Pearson r"
        ),
        tooltip=tooltip,
    )
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("r:Q", format=".2f"),
        color=alt.condition("abs(datum.r) > 0.6", alt.value("white"), alt.value("black")),
    )
    return _finish(alt.layer(cells, labels), "Pearson correlation between curves", 48 * len(rows))


def _probit_axis() -> alt.Axis:
    """An axis of probit values ticked and labelled at the accuracies of :data:`PROBIT_TICKS`."""
    values = [NormalDist().inv_cdf(p) for p in PROBIT_TICKS]
    return alt.Axis(values=values, labelExpr="format(cumulativeNormal(datum.value), '.0%')")


def _group_colour(groups: Sequence[str]) -> alt.Color:
    """Colour by model group, each group keeping its colour whichever groups are present."""
    legend = alt.Legend(orient="top", symbolOpacity=1)
    return alt.Color("group:N", title=None, scale=alt.Scale(domain=list(groups)), legend=legend)


def comparison_scatter(
    points: pd.DataFrame,
    lines: pd.DataFrame | None,
    groups: Sequence[str],
    titles: tuple[str, str],
    probit_axes: tuple[bool, bool] = (False, False),
) -> alt.LayerChart:
    """One measurement against another, one point per checkpoint (columns run, epoch, group, x_axis,
    y_axis: the plotted values; x, y, arch, pretrained_tag, training_data, n_params for the tooltip).

    Points are coloured by model group (in the order of ``groups``) and sized by n_params (diamonds of
    one size where unknown); each trajectory's points are joined in epoch order; ``lines`` (group, x, y:
    two ends per group, in plotted units) are drawn dashed on top (``None``: the points alone, a layer
    fewer, as the Compare page first draws them while the fits are under way). A probit axis is labelled
    in accuracies.
    """
    colour = _group_colour(groups)
    x = alt.X("x_axis:Q", title=titles[0], scale=alt.Scale(zero=False))
    y = alt.Y("y_axis:Q", title=titles[1], scale=alt.Scale(zero=False))
    if probit_axes[0]:
        x = x.axis(_probit_axis())
    if probit_axes[1]:
        y = y.axis(_probit_axis())
    paths = (
        alt.Chart(points[points["epoch"] >= 0])
        .mark_line(opacity=0.35, strokeWidth=1)
        .encode(x=x, y=y, color=colour, detail="run:N", order="epoch:Q")
    )
    tooltip = ["run:N", "epoch:Q", "arch:N", "pretrained_tag:N", "training_data:N"]
    tooltip += [alt.Tooltip("n_params:Q", format=","), _tip("x"), _tip("y")]
    known = points["n_params"].notna()
    sized = (
        alt.Chart(points[known])
        .mark_point(filled=True, opacity=0.8)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
        .encode(
            size=alt.Size(
                "n_params:Q", title="parameters", scale=PARAMS_SCALE, legend=alt.Legend(format=".2s")
            )
        )
    )
    unsized = (
        alt.Chart(points[~known])
        .mark_point(filled=True, opacity=0.8, shape="diamond", size=60)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
    )
    layers = [paths, sized, unsized]
    if lines is not None:
        fits = (
            alt.Chart(lines.rename(columns={"x": "x_axis", "y": "y_axis"}))
            .mark_line(strokeDash=[6, 3], strokeWidth=2.5)
            .encode(x=x, y=y, color=colour, detail="group:N")
        )
        layers.append(fits)
    return _finish(alt.layer(*layers), f"{titles[1]} against {titles[0]}", 380)


def run_curves(curves: pd.DataFrame, along: str, y_title: str, groups: Sequence[str]) -> alt.LayerChart:
    """One series for several runs (columns run, group, epoch, fraction, value) against ``along``
    ('epoch' or 'fraction' of training), one line per run; models outside a trajectory (epoch −1) are
    dashed horizontal rules. Coloured by run up to :data:`MAX_RUN_COLOURS` runs, else by model group."""
    axes = {
        "epoch": alt.X("epoch:Q", title="epoch", axis=EPOCH_AXIS),
        "fraction": alt.X(
            "fraction:Q", title="fraction of training (epoch / last epoch)", axis=alt.Axis(format="%")
        ),
    }
    if along not in axes:
        raise ValueError(f"unknown x axis {along!r}; choose from {', '.join(axes)}")
    if curves["run"].nunique() <= MAX_RUN_COLOURS:
        colour = alt.Color("run:N", title=None, legend=alt.Legend(orient="top", columns=1, labelLimit=400))
    else:
        colour = _group_colour(groups)
    tooltip = ["run:N", "group:N", "epoch:Q", alt.Tooltip("fraction:Q", format=".0%"), _tip("value")]
    lines = (
        alt.Chart(curves[curves["epoch"] >= 0])
        .mark_line(point=alt.OverlayMarkDef(size=20), opacity=0.8)
        .encode(
            axes[along],
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=colour,
            detail="run:N",
            tooltip=tooltip,
        )
    )
    rules = (
        alt.Chart(curves[curves["epoch"] < 0])
        .mark_rule(strokeDash=[6, 3], strokeWidth=2)
        .encode(y="value:Q", color=colour, tooltip=tooltip)
    )
    return _finish(alt.layer(lines, rules), f"{y_title} over training", 300)


def shape_bias_chart(model: pd.DataFrame, humans: pd.DataFrame, model_name: str) -> alt.LayerChart:
    """Shape bias per shape class: the model (``model``: shape_class, shape_bias) against each human subject
    and the subjects' mean (``humans``: subject, shape_class, shape_bias; subject 'mean' for the mean)."""
    order = ["all", *sorted((set(model["shape_class"]) | set(humans["shape_class"])) - {"all"})]
    y = alt.Y("shape_class:N", title="shape class", sort=order)
    x = alt.X("shape_bias:Q", title="shape bias = shape / (shape + texture)", scale=alt.Scale(domain=[0, 1]))
    palette = alt.Scale(domain=[model_name, HUMANS], range=["#c53030", "#2d3748"])
    who = alt.Color("who:N", title=None, scale=palette, legend=alt.Legend(orient="top", labelLimit=400))
    subjects = humans[humans["subject"] != "mean"]
    mean = humans[humans["subject"] == "mean"]
    layers = [
        alt.Chart(subjects)
        .mark_circle(size=30, opacity=0.45, color=REFERENCE_COLOUR)
        .encode(x=x, y=y, tooltip=["subject:N", "shape_class:N", alt.Tooltip("shape_bias:Q", format=".3f")]),
        alt.Chart(mean.assign(who=HUMANS))
        .mark_point(shape="diamond", size=90, filled=True)
        .encode(x=x, y=y, color=who, tooltip=["shape_class:N", alt.Tooltip("shape_bias:Q", format=".3f")]),
        alt.Chart(model.assign(who=model_name))
        .mark_point(shape="circle", size=90, filled=True)
        .encode(
            x=x,
            y=y,
            color=who,
            tooltip=["shape_class:N", "n_shape:Q", "n_texture:Q", alt.Tooltip("shape_bias:Q", format=".3f")],
        ),
    ]
    return _finish(alt.layer(*layers), "Shape bias per class", 22 * len(order))


def stimulus_thumbnails(root: Path, images: Iterable[str], size: int = 72) -> dict[str, str]:
    """PNG data URIs of cue-conflict stimuli at ``root/<image>``, for images that exist under ``root``.

    Names that resolve outside ``root`` (``..``, absolute paths, links) are skipped, never read.
    """
    base = root.resolve()
    thumbnails: dict[str, str] = {}
    for image in images:
        path = (base / image).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            continue
        with Image.open(path) as picture:
            small = picture.convert("RGB")
            small.thumbnail((size, size))
        buffer = io.BytesIO()
        small.save(buffer, format="PNG")
        thumbnails[image] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return thumbnails


def decision_grid(frame: pd.DataFrame, thumbnails: dict[str, str], columns: int = 8) -> alt.LayerChart:
    """A grid of cue-conflict images (columns image, cue, decision, shape_class, texture_class, margin),
    each framed in the colour of its cue (shape / texture / other); names stand in for missing thumbnails."""
    cells = frame.reset_index(drop=True).assign(
        col=lambda f: f.index % columns,
        row=lambda f: f.index // columns,
        name=lambda f: f["image"].str.rsplit("/", n=1).str[-1].str.removesuffix(".png"),
        url=lambda f: f["image"].map(thumbnails).fillna(""),
    )
    with_images = bool(len(cells)) and bool((cells["url"] != "").all())
    side = 84 if with_images else 120
    base = alt.Chart(cells).encode(
        x=alt.X("col:O", axis=None),
        y=alt.Y("row:O", axis=None),
        tooltip=[
            "image:N",
            "shape_class:N",
            "texture_class:N",
            "decision:N",
            alt.Tooltip("margin:Q", format=".4f"),
        ],
    )
    frame_mark = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("cue:N", scale=_CUE_SCALE, title="decision follows")
    )
    if with_images:
        content = base.mark_image(width=side - 14, height=side - 14).encode(url="url:N")
    else:
        content = base.mark_text(fontSize=10, color="white").encode(text="name:N")
    n_rows = int(cells["row"].max()) + 1 if len(cells) else 1
    return alt.layer(frame_mark, content).properties(
        width=side * min(columns, max(len(cells), 1)),
        height=side * n_rows,
        autosize=alt.AutoSizeParams(type="pad"),
    )


def image_history_chart(history: pd.DataFrame, image: str) -> alt.LayerChart:
    """One image's margin (shape − texture score) across epochs, points coloured by the decision's cue."""
    base = alt.Chart(history).encode(x=alt.X("epoch:Q", axis=EPOCH_AXIS))
    line = base.mark_line(color=REFERENCE_COLOUR).encode(y=alt.Y("margin:Q", title="shape − texture score"))
    points = base.mark_point(filled=True, size=70).encode(
        y="margin:Q",
        color=alt.Color("cue:N", scale=_CUE_SCALE, title="decision follows"),
        tooltip=["epoch:Q", "decision:N", "cue:N", alt.Tooltip("margin:Q", format=".4f")],
    )
    zero = (
        alt.Chart(pd.DataFrame({"margin": [0.0]})).mark_rule(color="black", opacity=0.3).encode(y="margin:Q")
    )
    return _finish(alt.layer(zero, line, points), image, 220)


def _ln_k_rule(ln_k: float, axis: str) -> alt.LayerChart:
    frame = pd.DataFrame({"value": [ln_k], "label": [f"ln K = {ln_k:.3f}"]})
    rule = alt.Chart(frame).mark_rule(color="black", strokeDash=[4, 3])
    rule = rule.encode(x="value:Q") if axis == "x" else rule.encode(y="value:Q")
    text = alt.Chart(frame).mark_text(align="left", dx=4, dy=-6, fontSize=11)
    text = (
        text.encode(x="value:Q", y=alt.value(8), text="label:N")
        if axis == "x"
        else text.encode(y="value:Q", x=alt.value(4), text="label:N")
    )
    return alt.layer(rule, text)


def entropy_histogram(values: pd.DataFrame, ln_k: float | None) -> alt.LayerChart:
    """Overlaid histograms of per-image entropy (columns epoch, tau, entropy), one colour per (epoch, τ).

    ``ln_k`` (the maximum entropy over K prompts) is marked and bounds the x axis; None leaves it out.
    """
    upper = ln_k if ln_k else max(float(values["entropy"].max()), 1e-9) if len(values) else 1.0
    values = values.assign(
        group="epoch " + values["epoch"].astype(str) + ", τ=" + values["tau"].map("{:g}".format)
    )
    bars = (
        alt.Chart(values)
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("entropy:Q", bin=alt.Bin(maxbins=40, extent=[0, upper]), title="entropy (nats)"),
            y=alt.Y("count():Q", stack=None, title="images"),
            color=alt.Color("group:N", title=None),
            tooltip=["group:N", "count():Q"],
        )
    )
    layers = [bars, _ln_k_rule(ln_k, "x")] if ln_k else [bars]
    return _finish(alt.layer(*layers), "Per-image entropy", 260)


def mean_entropy_chart(means: pd.DataFrame, ln_k: float | None) -> alt.LayerChart:
    """Mean entropy vs epoch (columns epoch, tau, mean_entropy), one line per τ; ``ln_k`` marked if given."""
    lines = (
        alt.Chart(means.assign(tau_label=means["tau"].map("τ={:g}".format)))
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=EPOCH_AXIS),
            y=alt.Y("mean_entropy:Q", title="mean entropy (nats)"),
            color=alt.Color("tau_label:N", title=None, sort=alt.SortField("tau", order="descending")),
            tooltip=["epoch:Q", "tau:Q", alt.Tooltip("mean_entropy:Q", format=".4f")],
        )
    )
    layers = [lines, _ln_k_rule(ln_k, "y")] if ln_k else [lines]
    return _finish(alt.layer(*layers), "Mean entropy over training", 260)


def tau_sweep_chart(sweep: pd.DataFrame, y_title: str, title: str) -> alt.TopLevelMixin:
    """A stored τ sweep (columns epoch, mode, tau, value): value vs log τ, one line per epoch and mode."""
    dash = alt.StrokeDash("mode:N", title="C") if sweep["mode"].ne("").any() else alt.Undefined
    chart = (
        alt.Chart(sweep)
        .mark_line(point=True)
        .encode(
            x=alt.X("tau:Q", scale=alt.Scale(type="log"), title="temperature τ"),
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("epoch:Q", scale=alt.Scale(scheme="viridis"), legend=alt.Legend(format="d")),
            strokeDash=dash,
            detail=["epoch:N", "mode:N"],
            tooltip=["epoch:Q", "mode:N", "tau:Q", alt.Tooltip("value:Q", format=".4f")],
        )
    )
    return _finish(chart, title, 260)


def confusion_frame(confusion: np.ndarray, classnames: list[str]) -> pd.DataFrame:
    """Tidy (true, predicted, count) rows of a confusion matrix; labels without a name keep their number."""
    names = [classnames[i] if i < len(classnames) else str(i) for i in range(confusion.shape[0])]
    return pd.DataFrame(
        [(names[t], names[p], int(confusion[t, p])) for t in range(len(names)) for p in range(len(names))],
        columns=["true", "predicted", "count"],
    )


def confusion_chart(tidy: pd.DataFrame) -> alt.LayerChart:
    """Heatmap of a confusion matrix (``confusion_frame`` rows), counts written in the cells."""
    order = list(dict.fromkeys(tidy["true"]))
    base = alt.Chart(tidy).encode(
        x=alt.X("predicted:N", sort=order, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("true:N", sort=order),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")),
        tooltip=["true:N", "predicted:N", "count:Q"],
    )
    text = base.mark_text(fontSize=10).encode(text="count:Q")
    return _finish(alt.layer(cells, text), "Confusion matrix (test split)", 26 * len(order))


def chart_image(chart: alt.TopLevelMixin, fmt: str) -> bytes:
    """The chart rendered to ``fmt`` ('png' or 'svg') with vl-convert, for downloads."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"unknown image format {fmt!r}; choose 'png' or 'svg'")
    buffer = io.StringIO() if fmt == "svg" else io.BytesIO()
    chart.save(buffer, format=fmt, **({"scale_factor": 2} if fmt == "png" else {}))
    value = buffer.getvalue()
    return value.encode() if isinstance(value, str) else value


# --- the probe page: charts of a clipdash.probe.scores.ProbeResult's tables ---------------------------


def _bar_rows(chart: alt.TopLevelMixin, title: str, rows: int) -> alt.TopLevelMixin:
    """Title, a height of one bar row per item, and the page's width."""
    return chart.properties(
        title=title, height=22 * rows + 20, autosize=alt.AutoSizeParams(type="fit-x", contains="padding")
    )


def _tip(column: str) -> alt.Tooltip:
    return alt.Tooltip(f"{column}:Q", format=".4f")


def _score_tips(frame: pd.DataFrame) -> list[alt.Tooltip]:
    """Tooltips of the score columns a probe table has (a CLIP's cosines, a classifier's logits)."""
    return [_tip(column) for column in ("probability", "cosine", "logit") if column in frame.columns]


def sixteen_class_chart(
    sixteen: pd.DataFrame,
    pair: tuple[str, str],
    templates: str = "80 ImageNet templates",
    x_title: str = SOFTMAX_COS,
    domain: tuple[float, float] | None = (0, 1),
) -> alt.TopLevelMixin:
    """The 16 class probabilities, the chosen pair's shape and texture classes in their cue colours.

    ``templates`` names how the scores were made (a CLIP's template set, or a classifier's 1000 → 16 rule);
    ``domain=None`` lets the axis follow the scores (a classifier's group means are far below 1).
    """
    shape, texture = pair
    role = sixteen["class"].map(lambda c: "shape" if c == shape else "texture" if c == texture else "other")
    scale = alt.Scale(domain=list(domain)) if domain is not None else alt.Undefined
    bars = (
        alt.Chart(sixteen.assign(role=role))
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", title=x_title, scale=scale),
            y=alt.Y("class:N", sort=list(sixteen["class"]), title=None),
            color=alt.Color(
                "role:N", scale=_CUE_SCALE, title="pair's class", legend=alt.Legend(orient="bottom")
            ),
            tooltip=["class:N", *_score_tips(sixteen)],
        )
    )
    return _bar_rows(bars, f"16-class scores ({templates})", len(sixteen))


def vote_chart(vote: pd.DataFrame) -> alt.TopLevelMixin:
    """The two cosines of the two-prompt vote, the winner's bar labelled "wins"."""
    frame = vote.assign(
        prompt=vote["cue"] + ": " + vote["class"], result=vote["wins"].map({True: "wins", False: ""})
    )
    base = alt.Chart(frame).encode(
        x=alt.X("cosine:Q", title="cos(image, class text embedding)"),
        y=alt.Y("prompt:N", sort=None, title=None),
        tooltip=["cue:N", "class:N", _tip("cosine"), "wins:N"],
    )
    bars = base.mark_bar().encode(color=alt.Color("cue:N", scale=_CUE_SCALE, legend=None))
    labels = base.mark_text(align="left", dx=4, fontWeight="bold").encode(text="result:N")
    return _bar_rows(alt.layer(bars, labels), "Two-prompt vote: shape class vs texture class", len(frame))


def top5_chart(
    top5: pd.DataFrame, label_set_name: str, title: str | None = None, x_title: str = SOFTMAX_COS
) -> alt.TopLevelMixin:
    """The top-5 labels' probabilities, most probable first (``title`` replaces "Zero-shot top-5 of …")."""
    bars = (
        alt.Chart(top5)
        .mark_bar(color=CUE_COLOURS["shape"])
        .encode(
            x=alt.X("probability:Q", title=x_title, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=alt.SortField("rank"), title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["rank:Q", "label:N", *_score_tips(top5)],
        )
    )
    return _bar_rows(bars, title or f"Zero-shot top-{len(top5)} of {label_set_name}", len(top5))


def profile_chart(profile: pd.DataFrame, tau: float) -> alt.TopLevelMixin:
    """The prompt profile, most probable prompt first, with the uniform level 1/K as a dashed rule."""
    bars = (
        alt.Chart(profile)
        .mark_bar(color="#4a5568")
        .encode(
            x=alt.X("probability:Q", title=f"softmax(cos / τ), τ = {tau:g}"),
            y=alt.Y("prompt:N", sort="-x", title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["prompt:N", _tip("probability"), _tip("cosine")],
        )
    )
    uniform = alt.Chart(pd.DataFrame({"probability": [1 / len(profile)]}))
    rule = uniform.mark_rule(color="black", strokeDash=[4, 3]).encode(x="probability:Q")
    title = f"Class-agnostic prompt profile (dashed: uniform 1/{len(profile)})"
    return _bar_rows(alt.layer(bars, rule), title, len(profile))


def reliability_diagram(bins: pd.DataFrame, title: str) -> alt.HConcatChart:
    """Accuracy per confidence bin (bars from the bin's lower to upper edge; a dot at the bin's mean
    confidence) against the diagonal of perfect calibration, before and after temperature scaling side by
    side (``bins``: ``reliability_bins`` rows)."""
    unit = alt.Scale(domain=[0, 1])
    tooltip = [
        alt.Tooltip("lower:Q", format=".3f"),
        alt.Tooltip("upper:Q", format=".3f"),
        "count:Q",
        alt.Tooltip("confidence:Q", format=".3f"),
        alt.Tooltip("accuracy:Q", format=".3f"),
    ]
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0]}))
        .mark_line(color=REFERENCE_COLOUR, strokeDash=[4, 3])
        .encode(x=alt.X("x:Q", scale=unit), y=alt.Y("x:Q", scale=unit))
    )
    panels = []
    for scaled, name, colour in (
        (False, "before", "#c53030"),
        (True, "after temperature scaling", "#2b6cb0"),
    ):
        frame = bins[bins["scaled"] == scaled]
        bars = (
            alt.Chart(frame)
            .mark_bar(opacity=0.75, stroke="white", color=colour)
            .encode(
                x=alt.X("lower:Q", title="confidence (top-1 softmax)", scale=unit),
                x2="upper:Q",
                y=alt.Y("accuracy:Q", title="accuracy in the bin", scale=unit),
                tooltip=tooltip,
            )
        )
        means = alt.Chart(frame).mark_point(color="black", size=18).encode(x="confidence:Q", y="accuracy:Q")
        panels.append(alt.layer(bars, means, diagonal).properties(title=name, width=260, height=260))
    return alt.hconcat(*panels).properties(title=title)


def ood_histogram(histogram: pd.DataFrame, title: str) -> alt.Chart:
    """Score distributions (``ood_score_histogram`` rows), the ID set drawn thicker than the OOD sets."""
    frame = histogram.assign(role=np.where(histogram["is_id"], "in distribution", "out of distribution"))
    chart = (
        alt.Chart(frame)
        .mark_line(interpolate="step")
        .encode(
            x=alt.X("score:Q", title="score (higher: in distribution)"),
            y=alt.Y("share:Q", title="share of the set's images"),
            color=alt.Color("dataset:N", title=None, legend=alt.Legend(orient="top")),
            strokeWidth=alt.StrokeWidth("role:N", scale=alt.Scale(range=[3.5, 1.5]), title=None),
            tooltip=["dataset:N", "role:N", alt.Tooltip("score:Q", format=".4f"), "count:Q"],
        )
    )
    return _finish(chart, title, 280)
