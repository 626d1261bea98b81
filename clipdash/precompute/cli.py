"""``python -m clipdash.precompute``: evaluate CLIP checkpoints on every measurement into one DuckDB file.

Example::

    python -m clipdash.precompute --model ViT-B-32:openai --model clipdash-vit-t4-minilm@runs/cifar10/ \
        --data-root ../shared/data --db data/clipdash.duckdb --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from clipdash.errors import ClipdashError
from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.measurements import get_measurement, list_measurements
from clipdash.models.checkpoints import CheckpointRef, resolve_checkpoints
from clipdash.models.configs import register_builtin_configs, register_model_config
from clipdash.models.encode import PRECISIONS
from clipdash.models.spec import parse_model_spec
from clipdash.precompute.backend import Backend, InProcessBackend
from clipdash.precompute.cache import default_cache_dir
from clipdash.precompute.config import TEMPLATE_SETS, EngineConfig
from clipdash.precompute.execute import FailedCheckpoint, Outcome, SkippedEvaluation, sha256_of
from clipdash.precompute.inputs import SplitSizes
from clipdash.precompute.plan import plan_run
from clipdash.precompute.settings import job_settings
from clipdash.store import ResultWriter
from clipdash.store.queries import summary_table
from clipdash.store.settings import describe_setting

log = logging.getLogger("clipdash.precompute")


def counting_number(minimum: int) -> Callable[[str], int]:
    """An argparse type for integers >= ``minimum`` (1 or 0), refusing others with one sentence."""
    wanted = "a positive integer" if minimum == 1 else "0 or a positive integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {value}")
        return value

    return parse


positive, non_negative = counting_number(1), counting_number(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipdash.precompute", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="SPEC",
        help="ARCH:TAG, ARCH@/file.pt, or [ARCH]@/run/dir/ (repeatable)",
    )
    parser.add_argument(
        "--model-config",
        action="append",
        type=Path,
        default=[],
        metavar="FILE.json",
        help="register an open_clip model config under the file's stem (repeatable)",
    )
    parser.add_argument(
        "--run-name",
        default=None,
        metavar="NAME",
        help="the run's name in the database (with exactly one --model); default: the run folder's name, "
        "ARCH:TAG, or the checkpoint file's name",
    )
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding the datasets")
    parser.add_argument("--db", type=Path, required=True, help="DuckDB results file (created if absent)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="fp32: float32 weights (bf16 autocast on CUDA, plain float32 on the CPU); "
        "bf16: weights cast to bfloat16 once, bf16 autocast",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="decoded images reused by later runs (default $CLIPDASH_CACHE_DIR or ~/.cache/clipdash/decoded)",
    )
    parser.add_argument("--no-cache", action="store_true", help="decode every run; write no cache files")
    parser.add_argument(
        "--decoder",
        default="auto",
        choices=("auto", "pil"),
        help="auto: JPEGs decoded on the GPU (nvJPEG) when --device is CUDA, else PIL; pil: always PIL",
    )
    parser.add_argument(
        "--evals",
        default=",".join(list_measurements()),
        help=f"comma-separated subset of {','.join(list_measurements())}",
    )
    parser.add_argument(
        "--templates",
        default="clip",
        choices=TEMPLATE_SETS,
        help="clip: the dataset's CLIP ensemble; seed: 'an image of {}'; photo: 'a photo of a {}.'",
    )
    parser.add_argument("--zeroshot-datasets", default="cifar10,cifar100,imagenette")
    parser.add_argument(
        "--limit", type=positive, default=None, help="use at most N images per dataset (quick runs)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=None,
        help="images per forward pass (default: 256 on CPU, 512 on CUDA)",
    )
    parser.add_argument("--probe-train-per-class", type=positive, default=500)
    parser.add_argument("--ca-train-per-class", type=positive, default=200)
    parser.add_argument("--ca-test-per-class", type=positive, default=100)
    parser.add_argument(
        "--embeddings-per-class",
        type=non_negative,
        default=10,
        help="image embeddings stored per class and split for interactive probes",
    )
    parser.add_argument("--noise-seed", type=non_negative, default=0)
    parser.add_argument(
        "--noise-dataset",
        default="cifar10",
        choices=("cifar10", "imagenette"),
        help="noise: CIFAR-10-C (default) or Imagenette-C Gaussian noise (ImageNet classifiers: imagenette)",
    )
    parser.add_argument(
        "--ood-id",
        default="cifar10",
        choices=("cifar10", "imagenette"),
        help="ood: the in-distribution set (ImageNet classifiers: always imagenette)",
    )
    parser.add_argument(
        "--bootstrap-resamples",
        type=non_negative,
        default=1000,
        help="replicates of the 95 %% bootstrap interval stored beside each headline number (0: none)",
    )
    parser.add_argument("--bootstrap-seed", type=non_negative, default=0)
    parser.add_argument("--download", action="store_true", help="download missing datasets when online")
    parser.add_argument(
        "--backend",
        default="in-process",
        choices=("in-process", "ray"),
        help="in-process (default) or ray: one Ray task per checkpoint, this process writing the results",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="auto|HOST:PORT",
        help="an existing Ray cluster (default: start a local one on this machine)",
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=None,
        help="torch intra-op threads (in-process: this process; ray: each task's CPUs; default: torch's "
        "choice in-process, 1 per Ray task)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="evaluate again what is stored under the same settings, replacing those rows",
    )
    return parser


def check_same_run(refs: list[CheckpointRef], writer: ResultWriter) -> None:
    """Refuse to add checkpoints from another folder to a stored run of the same name.

    Runs are named by their folder's basename, so ``a/seed0/`` and ``b/seed0/`` would merge (and the
    second be skipped as done). The same checkpoint files in a new place (a moved folder, checked by the
    SHA-256 of one epoch stored for both) are the same run.
    """
    run = refs[0].run
    stored = writer.stored_checkpoints(run)
    files = [ref for ref in refs if ref.path is not None]
    stored_folders = sorted({Path(path).parent for path, _ in stored.values() if path})
    if not files or not stored_folders or {ref.path.parent for ref in files} & set(stored_folders):
        return
    both = [ref for ref in files if stored.get(ref.epoch, (None, None))[1]]
    if both and sha256_of(both[0].path) == stored[both[0].epoch][1]:
        log.info(
            "run %s: same checkpoints as stored from %s, now in %s",
            run,
            stored_folders[0],
            files[0].path.parent,
        )
        return
    raise ClipdashError(
        f"run {run!r} in {writer.path} holds the checkpoints of {stored_folders[0]}; "
        f"{files[0].path.parent} is another run with the same name: give it its own name with --run-name NAME"
    )


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    """The typed engine configuration of a command line (checked by ``EngineConfig``)."""
    return EngineConfig(
        data_root=args.data_root,
        evals=tuple(e.strip() for e in args.evals.split(",") if e.strip()),
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        templates=args.templates,
        zeroshot_names=tuple(n.strip() for n in args.zeroshot_datasets.split(",") if n.strip()),
        limit=args.limit,
        splits=SplitSizes(
            args.probe_train_per_class,
            args.ca_train_per_class,
            args.ca_test_per_class,
            args.embeddings_per_class,
        ),
        noise_seed=args.noise_seed,
        noise_dataset=args.noise_dataset,
        ood_id=args.ood_id,
        bootstrap=BootstrapConfig(args.bootstrap_resamples, args.bootstrap_seed),
        download=args.download,
        cache_dir=None if args.no_cache else args.cache_dir,
        gpu_decode=args.decoder == "auto",
    )


def make_backend(args: argparse.Namespace) -> Backend:
    """The backend the command line asks for (Ray is imported only for ``--backend ray``)."""
    threads = getattr(args, "threads", None)
    if getattr(args, "backend", "in-process") == "ray":
        from clipdash.precompute.ray_backend import RayBackend

        backend = RayBackend(args.ray_address, threads or 1, args.model_config)
        log.info("Ray cluster: %s", backend.resources())
        return backend
    if threads:
        torch.set_num_threads(threads)
    return InProcessBackend()


class Job:
    """One precompute invocation: plan each run against the store, execute it on a backend, write results."""

    def __init__(self, args: argparse.Namespace, backend: Backend | None = None):
        if args.run_name is not None and (len(args.model) != 1 or not args.run_name.strip()):
            raise ClipdashError("--run-name names one run: give it with exactly one --model")
        self.config = config_from_args(args)
        self.specs = list(args.model)
        self.run_name = args.run_name.strip() if args.run_name else None
        self.backend = backend or make_backend(args)
        self.force = bool(getattr(args, "force", False))
        self.settings = job_settings(self.config)  # eval -> the setting its results are stored under
        self.classifier_settings = job_settings(self.config, classifier=True)  # for timm: baselines
        sensitive = [e for e in self.config.evals if get_measurement(e).bf16_sensitive]
        if self.config.precision == "bf16" and sensitive:
            log.warning(
                "--precision bf16: %s moved by more than 0.5 points against fp32 on the bundled run (README, "
                "Performance); to keep fp32 numbers for them, run --evals %s with --precision fp32 into the "
                "same database",
                ", ".join(sensitive),
                ",".join(sensitive),
            )
        self.failures: list[str] = []

    def run(self, writer: ResultWriter) -> None:
        for text in self.specs:
            spec = parse_model_spec(text)
            refs = resolve_checkpoints(spec)
            if self.run_name is not None:
                refs = [dataclasses.replace(ref, run=self.run_name) for ref in refs]
            if not refs:
                continue
            check_same_run(refs, writer)
            settings = self.settings
            if spec.source == "classifier":
                settings = self.classifier_settings
                other = [name for name in self.settings if name not in settings]
                if other:
                    log.info("%s: %s do(es) not apply to an ImageNet classifier", spec.text, ", ".join(other))
            setting_ids = {name: setting.id for name, setting in settings.items()}
            items = plan_run(refs, setting_ids, writer.completed(refs[0].run), force=self.force)
            log.info("%s: %d checkpoint(s), %d to evaluate", spec.text, len(refs), len(items))
            if items:
                outcomes = self.backend.run(spec.text, items, self.config, settings, self.force)
                # closing: a failed write ends the progress bars before its message is printed
                with contextlib.closing(outcomes):
                    for outcome in outcomes:
                        self.record(outcome, writer)

    def record(self, outcome: Outcome, writer: ResultWriter) -> None:
        """Write a result; log a skipped evaluation or checkpoint and count it as a failure."""
        if isinstance(outcome, SkippedEvaluation):
            log.error("%s skipped for every checkpoint of %s: %s", outcome.eval, outcome.run, outcome.reason)
            self.failures.append(f"{outcome.run}: {outcome.eval} skipped ({outcome.reason})")
        elif isinstance(outcome, FailedCheckpoint):
            log.error("skipped %s epoch %d: %s", outcome.run, outcome.epoch, outcome.reason)
            self.failures.append(f"{outcome.run} epoch {outcome.epoch}: {outcome.reason}")
        else:
            writer.write(outcome)


EXIT_OK, EXIT_SKIPPED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    """Run the precompute; returns the exit code (README: 0 done, 1 some skipped, 2 error, 130 interrupted).

    Usage errors (argparse) also exit 2. Every error is one line on stderr; the database keeps whatever
    was written before it.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        register_builtin_configs()
        for path in args.model_config:
            register_model_config(path)
        job = Job(args)
        with ResultWriter(args.db) as writer:
            job.run(writer)
        settings = [*job.settings.values(), *job.classifier_settings.values()]
        summary = summary_table(writer.path, [setting.id for setting in settings])
    except (ClipdashError, OSError) as exc:
        log.debug("precompute failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            f"interrupted: {args.db} keeps every checkpoint finished so far; run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if not summary.empty:
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("settings of these numbers (stored in evaluation_settings, one id per measurement):")
        for name, setting in job.settings.items():
            print(f"  {name} [{setting.id}]: {describe_setting(setting.values)}")
    print(f"done in {time.time() - start:.1f} s -> {args.db}")
    if job.failures:
        print(f"{len(job.failures)} checkpoint(s) or evaluation(s) failed and were skipped:", file=sys.stderr)
        for failure in job.failures:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK
