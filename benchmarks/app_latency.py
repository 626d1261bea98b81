"""Dashboard latency on a results database (run by hand, never in tests).

    python benchmarks/app_latency.py [--db data/clipdash.duckdb] [--taus 50]
    python benchmarks/app_latency.py --synthetic [--runs 100] [--epochs 30] [--synthetic-db PATH] [--repeat 3]

Prints, per page, the first render through Streamlit's AppTest (wall seconds, and the process's CPU
seconds, which stay meaningful on a busy machine): the page's whole script, queries and charts included,
- cold: in a fresh Python process (a deep link right after the server starts: the page's imports included),
- after home: in a fresh process, a few seconds after the entrypoint rendered Home (the usual first visit:
  app.py's background prewarm imports SciPy and scikit-learn, then loads the bundled model for Probe), and
- warm: in one process with the imports done but every st.cache_data cache cleared (a page's first visit),
then the Temperature page's τ-slider latency as p50/p95 over ``--taus`` slider values per classifier: the
whole script's rerun (AppTest reruns every script whole), the rerun of the page's retrain fragment alone
(what a browser waits for: a widget inside an ``st.fragment`` reruns only the fragment; see
:func:`fragment_reruns`), and the refit alone.

``--synthetic`` writes a database of ``--runs`` training runs × ``--epochs`` epochs into a temporary folder
(the Curves page's default series from the measurement registry, each run under one setting per
measurement, values shaped like learning curves; ``--synthetic-db PATH`` keeps it there and reuses it, since
writing 3,000 checkpoints takes minutes) and measures the Compare page on it, the median of ``--repeat``
fresh processes for cold and after Home. It prints two times per case: *first chart*, when the script
hands its first chart to Streamlit (what a browser shows first: a running script's elements are sent as
they are made), and *whole*, the script's end (every chart, the fit table, the points table). The goal of
issue 13 is under 2 s to first render. ``--browser`` adds, ``--repeat`` times, a deep link to /compare in
Debian's chromium on a freshly started server (see :func:`browser_deep_link`; needs /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
HOME_READING_S = 5.0  # how long a visitor looks at Home before opening another page
PAGES = (
    "pages/home.py",
    "pages/curves.py",
    "pages/compare.py",
    "pages/cue_conflict.py",
    "pages/entropy.py",
    "pages/temperature.py",
    "pages/probe.py",
)


class ChartClock:
    """Wall and CPU clocks read when the running script hands Streamlit its first chart (a Vega-Lite
    element: Streamlit sends it to the browser then, before the script ends); NaN until it does."""

    def __init__(self) -> None:
        self.wall = self.cpu = math.nan
        self._armed = False

    def arm(self) -> None:
        self.wall = self.cpu = math.nan
        self._armed = True

    def __call__(self, msg) -> None:  # ForwardMsgQueue's before-enqueue hook, on the script thread
        new = msg.delta.new_element if msg.WhichOneof("type") == "delta" else None
        if self._armed and new is not None and new.WhichOneof("type") == "vega_lite_chart":
            self.wall, self.cpu, self._armed = time.perf_counter(), time.process_time(), False


def render_seconds(page: str, after_home: bool = False) -> tuple[float, float, float, float]:
    """Wall and CPU seconds for one AppTest render of ``page``: to its first chart, and to the script's
    end (raises if the page raised)."""
    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
    from streamlit.testing.v1 import AppTest

    clock = ChartClock()
    ForwardMsgQueue.on_before_enqueue_msg(clock)
    try:
        app = AppTest.from_file(APP, default_timeout=600)
        if after_home:
            app.run()
            time.sleep(HOME_READING_S)
        wall, cpu = time.perf_counter(), time.process_time()
        clock.arm()
        app.switch_page(page).run()
        end_wall, end_cpu = time.perf_counter(), time.process_time()
    finally:
        ForwardMsgQueue.on_before_enqueue_msg(None)
    if app.exception:
        raise RuntimeError(f"{page} raised: {app.exception[0].value}")
    return clock.wall - wall, clock.cpu - cpu, end_wall - wall, end_cpu - cpu


def cold_seconds(page: str, db: Path, after_home: bool = False) -> tuple[float, float, float, float]:
    """``render_seconds`` in a fresh interpreter: the page's imports (altair, duckdb, sklearn, ...) included,
    Streamlit's own not (a running server has those)."""
    env = {**os.environ, "CLIPDASH_DB": str(db)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", page, *(["--after-home"] if after_home else [])],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def fragment_reruns(app):
    """Make ``app``'s next runs rerun only its page's one ``st.fragment``, as a browser's rerun request for a
    widget inside a fragment does (AppTest itself reruns the whole script); whole reruns on a page without
    one. Streamlit internals: AppTest's fragment storage and the RerunData its script runner builds."""
    import streamlit.testing.v1.local_script_runner as runner

    fragments = list(app._fragment_storage._fragments)
    if not fragments:  # a page without one reruns whole in a browser too
        yield
        return
    if len(fragments) > 1:
        raise RuntimeError(f"expected the page to register one fragment, found {len(fragments)}")
    rerun_data = runner.RerunData
    runner.RerunData = functools.partial(rerun_data, fragment_id_queue=fragments)
    try:
        yield
    finally:
        runner.RerunData = rerun_data


def slider_latency(n_taus: int) -> dict[str, dict[str, list[float]]]:
    """Per classifier, wall seconds over ``n_taus`` τ values, each a first visit (a cache miss): ``rerun``,
    the whole script rerun after a τ move; ``fragment``, only the page's retrain fragment rerun; ``refit``,
    ``retrain_class_agnostic`` alone (the fit, the intervals); and the process's CPU seconds of the first
    two (``rerun cpu``, ``fragment cpu``), which a busy machine inflates less than wall time."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from clipdash.evals.retrain import retrain_class_agnostic
    from clipdash.store import queries

    db = Path(os.environ["CLIPDASH_DB"])
    results = {}
    for classifier in ("linear_svm", "logreg", "mlp"):
        seconds: dict[str, list[float]] = {}
        for case in ("rerun", "fragment"):
            st.cache_data.clear()
            app = AppTest.from_file(APP, default_timeout=600)
            app.switch_page("pages/temperature.py").run()
            app.radio[0].set_value(classifier).run()
            options = [float(v) for v in app.select_slider[-1].options]
            taus = [options[i] for i in np.linspace(0, len(options) - 1, n_taus).round().astype(int)]
            with fragment_reruns(app) if case == "fragment" else contextlib.nullcontext():
                seconds[case], seconds[f"{case} cpu"] = [], []
                for tau in taus:
                    start, cpu = time.perf_counter(), time.process_time()
                    app.select_slider[-1].set_value(tau).run()
                    seconds[case].append(time.perf_counter() - start)
                    seconds[f"{case} cpu"].append(time.process_time() - cpu)
                    if app.exception:
                        raise RuntimeError(f"temperature raised: {app.exception[0].value}")
        index = queries.class_agnostic_index(db)
        last = index[index["run"] == index["run"].iloc[-1]].iloc[-1]
        splits = queries.class_agnostic_features(
            db, last["run"], last["setting"], int(last["epoch"]), last["dataset"]
        )
        seconds["refit"] = []
        for tau in taus:
            start = time.perf_counter()
            retrain_class_agnostic(
                splits.train_x, splits.train_y, splits.test_x, splits.test_y, tau, classifier
            )
            seconds["refit"].append(time.perf_counter() - start)
        results[classifier] = seconds
    return results


def write_synthetic(path: Path, runs: int, epochs: int) -> None:
    """``runs`` training runs × ``epochs`` epochs of the registry's default curves, written through
    ``ResultWriter``: each run rises towards its own final accuracy, the other series follow it with noise."""
    from clipdash.measurements import all_series
    from clipdash.store import CheckpointResult, EvalResult, ResultWriter

    defaults = [(m.name, s) for m, s in all_series() if s.default_rank is not None]
    settings = {f"{name}-synthetic": (name, '{"synthetic": true}') for name, _ in defaults}
    rng = np.random.default_rng(0)
    slopes, offsets = rng.uniform(0.3, 1.0, len(defaults)), rng.uniform(-0.1, 0.2, len(defaults))
    with ResultWriter(path) as writer:
        for r in range(runs):
            final, n_params = rng.uniform(0.4, 0.9), int(10 ** rng.uniform(6, 9))
            for epoch in range(epochs):
                accuracy = 0.1 + (final - 0.1) * (1 - np.exp(-epoch / 6))
                values = np.clip(
                    slopes * accuracy + offsets + 0.02 * rng.standard_normal(len(defaults)), 0, 1
                )
                metrics: dict[str, list] = {name: [] for name, _ in defaults}
                for (name, series), value in zip(defaults, values, strict=True):
                    metrics[name].append((series.metric, series.dataset, series.variant, float(value)))
                evals = [
                    EvalResult(name, 1.0, rows, setting=f"{name}-synthetic") for name, rows in metrics.items()
                ]
                run = f"synthetic-{r:03d}"
                writer.write(
                    CheckpointResult(
                        run, epoch, f"ViT-B-32@/runs/{run}/", "ViT-B-32", "directory",
                        f"/runs/{run}/epoch_{epoch}.pt", None, evals, settings=settings,
                        n_params=n_params, training_data="synthetic",
                    )
                )  # fmt: skip


def browser_deep_link(db: Path) -> dict[str, float]:
    """Seconds from a browser's request for ``/compare`` on a freshly started ``streamlit run app.py`` to
    what it shows: the page title, the first chart drawn, the fit table, the last chart (the script's
    end), then the same again on a second tab (the server's imports done). Debian's chromium through
    Playwright, as tests/test_browser.py drives it; the browser is started before the server. These
    include the browser's own work (loading Streamlit's frontend, Vega drawing the points), which on a
    busy 2-core machine takes seconds of its own."""
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    env = {**os.environ, "CLIPDASH_DB": str(db), "HF_HUB_OFFLINE": "1"}
    seen: dict[str, float] = {}
    chart = '[data-testid="stVegaLiteChart"]'
    marks = f"{chart} canvas, {chart} svg.marks"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        log = tempfile.TemporaryFile()
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start:\n{log.read().decode()}")
                time.sleep(0.1)
            for visit in ("cold", "second tab"):
                tab = browser.new_page(viewport={"width": 1400, "height": 1800})
                tab.set_default_timeout(120_000)
                start = time.perf_counter()
                tab.goto(f"{url}/compare", wait_until="commit")
                tab.get_by_role("heading", name="Compare models").wait_for()
                seen[f"{visit}: title"] = time.perf_counter() - start
                tab.locator(marks).first.wait_for()
                seen[f"{visit}: first chart"] = time.perf_counter() - start
                tab.locator('[data-testid="stDataFrame"]').first.wait_for()
                seen[f"{visit}: fit table"] = time.perf_counter() - start
                tab.locator(marks).nth(1).wait_for()
                seen[f"{visit}: last chart"] = time.perf_counter() - start
                if tab.locator('[data-testid="stException"]').count():
                    raise RuntimeError(tab.locator('[data-testid="stException"]').first.inner_text())
                tab.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            browser.close()
    return seen


def synthetic_compare(runs: int, epochs: int, keep: Path | None, repeat: int, browser: bool) -> None:
    """The Compare page on a synthetic database (written into ``keep``, or reused from it when it exists):
    to its first chart and to the script's end, cold, after Home and warm, medians of ``repeat`` runs."""
    import streamlit as st

    with tempfile.TemporaryDirectory(prefix="clipdash-compare-") as folder:
        db = keep.resolve() if keep is not None else Path(folder) / "synthetic.duckdb"
        if db.is_file():
            print(f"reusing {db} (written earlier; --runs and --epochs are not checked)")
        else:
            start = time.perf_counter()
            write_synthetic(db, runs, epochs)
            print(f"wrote {runs} runs x {epochs} epochs in {time.perf_counter() - start:.0f} s: {db}")
        os.environ["CLIPDASH_DB"] = str(db)
        page = "pages/compare.py"
        print(f"load average before: {os.getloadavg()[0]:.1f}\n")
        cold = [cold_seconds(page, db) for _ in range(repeat)]
        after_home = [cold_seconds(page, db, after_home=True) for _ in range(repeat)]
        render_seconds(page)  # imports this page's modules in this process
        warm = []
        for _ in range(repeat):
            st.cache_data.clear()
            warm.append(render_seconds(page))
    print(f"{page}, medians of {repeat} (seconds; load average after: {os.getloadavg()[0]:.1f})")
    header = ("chart wall", "chart cpu", "whole wall", "whole cpu")
    print(f"{'':<12}" + "".join(f"{h:>12}" for h in header))
    for case, times in (("cold", cold), ("after Home", after_home), ("warm", warm)):
        print(f"{case:<12}" + "".join(f"{v:>12.2f}" for v in np.median(np.array(times), axis=0)))
    if browser:
        print("\na browser's deep link to /compare on a fresh server, medians (seconds)")
        visits = [browser_deep_link(db) for _ in range(repeat)]
        for what in visits[0]:
            print(f"{what:<28}{np.median([v[what] for v in visits]):>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=REPO / "data" / "clipdash.duckdb")
    parser.add_argument("--taus", type=int, default=50, help="slider values per classifier")
    parser.add_argument("--slider-only", action="store_true", help="only the Temperature page's τ slider")
    parser.add_argument("--synthetic", action="store_true", help="only Compare, on a synthetic database")
    parser.add_argument("--runs", type=int, default=100, help="runs of the synthetic database")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run of the synthetic database")
    parser.add_argument(
        "--synthetic-db", type=Path, help="write the synthetic database here, or reuse it if it exists"
    )
    parser.add_argument("--repeat", type=int, default=1, help="synthetic: fresh processes per case (median)")
    parser.add_argument(
        "--browser", action="store_true", help="synthetic: also a deep link in chromium on a fresh server"
    )
    parser.add_argument("--child", metavar="PAGE", help=argparse.SUPPRESS)
    parser.add_argument("--after-home", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child:
        print(json.dumps(render_seconds(args.child, args.after_home)))
        return
    if args.synthetic:
        synthetic_compare(args.runs, args.epochs, args.synthetic_db, args.repeat, args.browser)
        return
    if not args.db.is_file():
        parser.error(f"results database not found: {args.db}")
    os.environ["CLIPDASH_DB"] = str(args.db.resolve())

    import streamlit as st

    print(f"database: {args.db}\n")
    header = ("cold wall", "cold cpu", "home→wall", "home→cpu", "warm wall", "warm cpu")
    print(f"{'page':<24}" + "".join(f"{h:>11}" for h in header) + "  (seconds)")
    for page in () if args.slider_only else PAGES:  # the whole script's wall and CPU seconds
        cold = cold_seconds(page, args.db)[2:]
        after_home = cold_seconds(page, args.db, after_home=True)[2:]
        render_seconds(page)  # imports this page's modules in this process
        st.cache_data.clear()
        warm = render_seconds(page)[2:]
        print(f"{page:<24}" + "".join(f"{v:>11.2f}" for v in (*cold, *after_home, *warm)))

    print(
        f"\nτ slider, {args.taus} values per classifier (load average {os.getloadavg()[0]:.1f}; fragment = "
        "what a browser waits for, rerun = the whole script)"
    )
    cases = ("rerun", "fragment", "fragment cpu", "refit")
    print(f"{'classifier':<12}" + "".join(f"{f'{case} p{q}':>18}" for case in cases for q in (50, 95)))
    for classifier, seconds in slider_latency(args.taus).items():
        p = [np.percentile(seconds[case], q) * 1000 for case in cases for q in (50, 95)]
        print(f"{classifier:<12}" + "".join(f"{v:>16.0f}ms" for v in p))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
