"""What every dashboard page shares: which database to read, cached named queries, charts with downloads.

The database is chosen in the sidebar (``app.py``) and validated here: only existing ``.duckdb`` files
inside the allowed folders are ever opened, always read-only and per query through ``clipdash.store``.
Query results are cached per (path, modification time), so a checkpoint a precompute writes into the file
shows up on the next rerun.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from clipdash import charts
from clipdash.errors import ClipdashError, StoreError
from clipdash.store import queries
from clipdash.store.settings import describe_setting

REPO = Path(__file__).resolve().parents[1]
BUNDLED_DB = REPO / "data" / "clipdash.duckdb"
REFERENCES_CSV = REPO / "data" / "reference_values.csv"
BUNDLED_MODEL = REPO / "data" / "bundled_model.pt"
DB_KEY = "database_path"
FRAMED = "clipdash_framed"  # set by app.py while it runs the page inside its frame
# Slow first imports (SciPy, scikit-learn) behind the Curves and Temperature pages; Compare imports its own
# only for its fits (clipdash.evals.compare.load_fit_libraries), which the prewarm also calls.
HEAVY_MODULES = ("clipdash.evals.curves", "clipdash.evals.retrain")
PRECOMPUTE = "python -m clipdash.precompute --model ARCH@runs/<run>/ --data-root ../shared/data --db {db}"


def default_database() -> Path:
    """``CLIPDASH_DB`` when set, else the bundled ``data/clipdash.duckdb``."""
    return Path(os.environ.get("CLIPDASH_DB") or BUNDLED_DB)


def allowed_roots() -> list[Path]:
    """Folders a database may be read from: data/, the folder of CLIPDASH_DB, and CLIPDASH_DB_DIRS entries."""
    roots = [REPO / "data", default_database().parent]
    roots += [Path(p) for p in os.environ.get("CLIPDASH_DB_DIRS", "").split(os.pathsep) if p]
    return list(dict.fromkeys(root.expanduser().resolve() for root in roots))


def validate_database_path(text: str, roots: list[Path]) -> Path:
    """The resolved path of an existing ``.duckdb`` file inside one of ``roots``; StoreError otherwise.

    Relative paths are taken from the repository root; ``..`` is refused outright.
    """
    text = text.strip()
    if not text:
        raise StoreError("no results database given: enter the path of a .duckdb file")
    candidate = Path(text).expanduser()
    if ".." in candidate.parts:
        raise StoreError(f"{text}: paths containing '..' are not allowed")
    if candidate.suffix != ".duckdb":
        raise StoreError(f"{text}: not a results database; choose a file ending in .duckdb")
    resolved = (candidate if candidate.is_absolute() else REPO / candidate).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(str(root) for root in roots)
        raise StoreError(
            f"{text} is outside the allowed folders ({listed}); add its folder to CLIPDASH_DB_DIRS"
        )
    if not resolved.is_file():
        raise StoreError(
            f"results database not found: {resolved}; create it with {PRECOMPUTE.format(db=text)}"
        )
    return resolved


def frame() -> None:
    """Page settings and the sidebar's database chooser, drawn around every page."""
    st.set_page_config(page_title="clipdash", page_icon=":material/insights:", layout="wide")
    sidebar_database()


@functools.cache
def prewarm_imports() -> None:
    """Once per server process, in a background thread: import :data:`HEAVY_MODULES` and Compare's fit
    libraries, so the first visit to Curves, Compare or Temperature does not wait for SciPy and
    scikit-learn, then load the bundled model for the Probe page (torch, open_clip and the prompt
    embeddings take seconds). A deep link to a page on a fresh server runs that page without app.py (see
    :func:`database`), so nothing is prewarmed for it: Compare then draws its points before its fits."""

    def load() -> None:
        for name in HEAVY_MODULES:
            importlib.import_module(name)
        importlib.import_module("clipdash.evals.compare").load_fit_libraries()  # what Compare's fits import
        choices = importlib.import_module("clipdash.probe.choices")
        live_models = importlib.import_module("clipdash.probe.model")
        choice = choices.bundled_choice(BUNDLED_MODEL)
        if choice is not None:
            try:
                live_models.prewarm(choice.spec)
            except ClipdashError:
                pass  # the Probe page loads it again and shows the error where the user looks

    # Not a daemon: the interpreter waits for it at exit instead of tearing torch down mid-load (an abort).
    threading.Thread(target=load, name="clipdash-prewarm", daemon=False).start()


def sidebar_database() -> None:
    """The sidebar's database chooser."""
    roots = allowed_roots()
    st.sidebar.text_input(
        "Results database",
        value=str(default_database()),
        key=DB_KEY,
        help="A .duckdb file written by python -m clipdash.precompute, inside: " + ", ".join(map(str, roots)),
    )
    found = sorted({p.name for root in roots if root.is_dir() for p in root.glob("*.duckdb")})
    if found:
        st.sidebar.caption("Found: " + ", ".join(found))


def database() -> Path:
    """The validated database chosen in the sidebar; shows the problem and stops the page otherwise."""
    if not st.session_state.get(FRAMED):
        # Streamlit runs a pages/ file without app.py in its legacy multipage mode (a first request
        # straight to a page URL on a fresh server; AppTest's switch_page), so the page draws the frame.
        frame()
    try:
        return validate_database_path(st.session_state.get(DB_KEY, str(default_database())), allowed_roots())
    except StoreError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(name: str, db: str, mtime_ns: int, args: tuple, _fn: Callable[..., Any]) -> Any:
    return _fn(db, *args)


def load(fn: Callable[..., Any], db: Path, *args: Any) -> Any:
    """``fn(db, *args)`` (a named query), cached per (query, path, mtime, args); shows errors and stops."""
    try:
        mtime = db.stat().st_mtime_ns
        return _cached(f"{fn.__module__}.{fn.__qualname__}", str(db), mtime, args, fn)
    except (ClipdashError, OSError) as exc:
        st.error(str(exc))
        st.stop()


def runs_in_order(frame: pd.DataFrame) -> list[str]:
    """The runs in ``frame`` (columns run, epoch), most epochs first: training runs before pretrained ones."""
    counts = frame.groupby("run")["epoch"].nunique()
    return counts.sort_values(ascending=False, kind="stable").index.tolist()


def choose_run_and_dataset(index: pd.DataFrame) -> tuple[str, str]:
    """Side-by-side run and dataset pickers over an index frame (columns run, epoch, dataset)."""
    left, right = st.columns(2)
    run = left.selectbox("Run", runs_in_order(index))
    dataset = right.selectbox("Dataset", index.loc[index["run"] == run, "dataset"].unique().tolist())
    return run, dataset


def choose_setting(db: Path, run: str, eval_name: str, where: Any = st, required: bool = True) -> str | None:
    """The setting to draw a run's ``eval_name`` results with: a chooser when the run has several (default:
    the one with the most epochs), captioned with what the setting is, so no chart mixes two. A run
    without such results stops the page, or gives None when not ``required``."""
    options = load(queries.run_settings, db, run, eval_name)
    if options.empty:
        if not required:
            return None
        where.info(f"{run} has no {eval_name} results.")
        st.stop()
    described = {
        row.setting: f"{describe_setting(row.settings)} — {row.n_epochs} epoch(s) [{row.setting}]"
        for row in options.itertuples()
    }
    if len(options) == 1:
        setting = options["setting"].iloc[0]
    else:
        setting = where.selectbox(
            f"Settings of {run}'s {eval_name} results ({len(options)} stored; never mixed in one curve)",
            list(described),
            format_func=described.get,
            key=f"setting-{run}-{eval_name}",
        )
    where.caption(f"{run} · {eval_name}: {described[setting]}")
    return setting


def stored_series(db: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str, str]]]:
    """Every stored series (``metric_series``), the runs (``runs_overview``) and the series as
    (metric, dataset, variant) choices; an empty database stops the page with the precompute command."""
    available = load(queries.metric_series, db)
    if available.empty:
        no_results(db)
    options = list(available[["metric", "dataset", "variant"]].itertuples(index=False, name=None))
    return available, load(queries.runs_overview, db), options


def no_results(db: Path, what: str = "results", evals: str | None = None) -> None:
    """The empty-database message, with the command that fills it; stops the page."""
    command = PRECOMPUTE.format(db=db) + (f" --evals {evals}" if evals else "")
    st.info(f"No {what} yet — run the precompute:\n\n```\n{command}\n```")
    st.stop()


def show_chart(
    chart: alt.TopLevelMixin, data: pd.DataFrame, name: str, stretch: bool = True, slot: Any = None
) -> None:
    """Draw an Altair chart with CSV / PNG / SVG downloads (files are built only when clicked); into
    ``slot`` (an ``st.empty()``) when given, replacing a first draw there, the downloads below it."""
    (st if slot is None else slot).altair_chart(chart, width="stretch" if stretch else "content")
    row = st.container(horizontal=True, gap="small")
    downloads = (
        ("CSV", "csv", "text/csv", lambda: data.to_csv(index=False)),
        ("PNG", "png", "image/png", lambda: charts.chart_image(chart, "png")),
        ("SVG", "svg", "image/svg+xml", lambda: charts.chart_image(chart, "svg")),
    )
    for label, suffix, mime, make in downloads:
        row.download_button(
            label,
            data=make,
            file_name=f"{name}.{suffix}",
            mime=mime,
            key=f"download-{name}-{suffix}",
            on_click="ignore",
            type="tertiary",
            icon=":material/download:",
        )


def stimuli_root() -> Path | None:
    """The cue-conflict stimuli folder under CLIPDASH_DATA_ROOT (default ../shared/data), if present."""
    data_root = Path(os.environ.get("CLIPDASH_DATA_ROOT") or REPO.parent / "shared" / "data")
    stimuli = data_root / "cue-conflict" / "stimuli"
    return stimuli if stimuli.is_dir() else None


@st.cache_data(show_spinner=False, max_entries=64)
def _thumbnails(root: str, images: tuple[str, ...]) -> dict[str, str]:
    return charts.stimulus_thumbnails(Path(root), images)


def thumbnails(images: pd.Series) -> dict[str, str]:
    """Data-URI thumbnails of cue-conflict stimuli when the stimuli folder is available, else none."""
    root = stimuli_root()
    return _thumbnails(str(root), tuple(images)) if root is not None else {}
