"""``python -m clipdash.precompute``: evaluate CLIP checkpoints on every measurement into one DuckDB file.

Example::

    python -m clipdash.precompute --model ViT-B-32:openai --model clipdash-vit-t4-minilm@runs/cifar10/ \
        --data-root ../shared/data --db data/clipdash.duckdb --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from clipdash.data.cue_conflict import load_human_trials
from clipdash.errors import ClipdashError
from clipdash.evals.class_agnostic import GENERIC_PROMPTS
from clipdash.evals.cue_conflict import human_shape_bias
from clipdash.models.checkpoints import CheckpointRef, resolve_checkpoints
from clipdash.models.configs import register_builtin_configs, register_model_config
from clipdash.models.encode import (
    PRECISIONS,
    TextEncoder,
    check_precision,
    prepare_model,
)
from clipdash.models.loading import LoadedModel, create_architecture, load_weights
from clipdash.models.spec import ModelSpec, parse_model_spec
from clipdash.precompute.cache import DecodedCache, default_cache_dir
from clipdash.precompute.context import CheckpointContext
from clipdash.precompute.evaluations import (
    bf16_sensitive,
    list_evaluations,
    prepare_evaluation,
    run_evaluation,
)
from clipdash.precompute.inputs import RunInputs, SplitSizes
from clipdash.store import CheckpointResult, ResultWriter
from clipdash.store.queries import summary_table

log = logging.getLogger("clipdash.precompute")
TEMPLATE_SETS = ("clip", "seed", "photo")
DEFAULT_BATCH = {"cpu": 256, "cuda": 512}


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
        default=",".join(list_evaluations()),
        help=f"comma-separated subset of {','.join(list_evaluations())}",
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
    parser.add_argument("--download", action="store_true", help="download missing datasets when online")
    return parser


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shared_tables(inputs: RunInputs, evals: list[str]) -> dict[str, pd.DataFrame]:
    """Tables that do not depend on the checkpoint: class names, the generic prompts, the human baseline.

    ``evals`` are those whose inputs loaded (``Job.usable_evals``), so every set named here is loaded.
    """
    tables: dict[str, pd.DataFrame] = {}
    labeled = inputs.zeroshot_names if "zeroshot" in evals else ()
    if {"noise", "probe", "class_agnostic"} & set(evals) and "cifar10" not in labeled:
        labeled = (*labeled, "cifar10")
    if labeled:
        frames = [
            pd.DataFrame(
                {"dataset": name, "label": range(len(data.classnames)), "classname": data.classnames}
            )
            for name in labeled
            for data in [inputs.labeled(name)]
        ]
        tables["classnames"] = pd.concat(frames)
    if "class_agnostic" in evals:
        tables["class_agnostic_prompts"] = pd.DataFrame(
            {"prompt_index": range(len(GENERIC_PROMPTS)), "prompt": list(GENERIC_PROMPTS)}
        )
    if "cue_conflict" in evals:
        try:
            tables["human_shape_bias"] = human_shape_bias(load_human_trials(inputs.data_root))
        except ClipdashError as exc:
            log.warning("no human baseline: %s", exc)
    return tables


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


class Job:
    """One precompute invocation: runs × checkpoints × evaluations, resumable through the store."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = parse_device(args.device)
        check_precision(args.precision)
        self.batch_size = args.batch_size or DEFAULT_BATCH[self.device.type]
        if args.run_name is not None and (len(args.model) != 1 or not args.run_name.strip()):
            raise ClipdashError("--run-name names one run: give it with exactly one --model")
        self.evals = [e.strip() for e in args.evals.split(",") if e.strip()]
        if not self.evals:
            raise ClipdashError(f"--evals names no evaluation; choose from {', '.join(list_evaluations())}")
        unknown = sorted(set(self.evals) - set(list_evaluations()))
        if unknown:
            raise ClipdashError(
                f"unknown evaluation(s) {', '.join(unknown)}; choose from {', '.join(list_evaluations())}"
            )
        if not args.data_root.is_dir():
            raise ClipdashError(f"data root not found: {args.data_root}")
        sensitive = bf16_sensitive(self.evals)
        if args.precision == "bf16" and sensitive:
            log.warning(
                "--precision bf16: %s moved by more than 0.5 points against fp32 on the bundled run (README, "
                "Performance); to keep fp32 numbers for them, run --evals %s with --precision fp32 into the "
                "same database",
                ", ".join(sensitive),
                ",".join(sensitive),
            )
        self.inputs_by_size: dict[int, RunInputs] = {}
        self.input_problems: dict[tuple[int, str], str | None] = {}  # (image size, eval) -> why unusable
        self.failures: list[str] = []

    def inputs_for(self, image_size: int) -> RunInputs:
        if image_size not in self.inputs_by_size:
            self.inputs_by_size[image_size] = RunInputs(
                self.args.data_root,
                image_size,
                self.args.limit,
                SplitSizes(
                    self.args.probe_train_per_class,
                    self.args.ca_train_per_class,
                    self.args.ca_test_per_class,
                    self.args.embeddings_per_class,
                ),
                self.args.noise_seed,
                self.args.download,
                tuple(n.strip() for n in self.args.zeroshot_datasets.split(",") if n.strip()),
                DecodedCache(None if self.args.no_cache else self.args.cache_dir),
                self.device,
                gpu_decode=self.args.decoder == "auto",
            )
        return self.inputs_by_size[image_size]

    def run(self, writer: ResultWriter) -> None:
        specs = [parse_model_spec(text) for text in self.args.model]
        for spec in specs:
            refs = resolve_checkpoints(spec)
            if self.args.run_name is not None:
                refs = [dataclasses.replace(ref, run=self.args.run_name.strip()) for ref in refs]
            if refs:
                check_same_run(refs, writer)
            done = writer.completed(refs[0].run) if refs else set()
            todo = [(ref, [e for e in self.evals if (ref.epoch, e) not in done]) for ref in refs]
            todo = [(ref, evals) for ref, evals in todo if evals]
            log.info("%s: %d checkpoint(s), %d to evaluate", spec.text, len(refs), len(todo))
            if todo:
                self.run_spec(spec, todo, writer)

    def run_spec(
        self, spec: ModelSpec, todo: list[tuple[CheckpointRef, list[str]]], writer: ResultWriter
    ) -> None:
        loaded = create_architecture(todo[0][0].arch, todo[0][0].tag, device=self.args.device)
        prepare_model(loaded, self.device, self.args.precision)
        inputs = self.inputs_for(loaded.image_size)
        asked = [e for e in self.evals if any(e in evals for _, evals in todo)]
        usable = self.usable_evals(todo[0][0].run, inputs, asked)
        todo = [(ref, [e for e in evals if e in usable]) for ref, evals in todo]
        todo = [(ref, evals) for ref, evals in todo if evals]
        if not todo:
            return
        text = TextEncoder(self.device)
        shared = shared_tables(inputs, usable)
        for ref, evals in tqdm(todo, desc=spec.text, unit="ckpt"):
            try:
                if ref.path is not None:
                    load_weights(loaded, ref)
                result = self.evaluate(spec, ref, loaded, inputs, text, evals)
            except ClipdashError as exc:
                self.failures.append(f"{ref.run} epoch {ref.epoch}: {exc}")
                log.error("skipped %s epoch %d: %s", ref.run, ref.epoch, exc)
                continue
            result.shared_tables = shared
            shared = {}
            writer.write(result)

    def usable_evals(self, run: str, inputs: RunInputs, evals: list[str]) -> list[str]:
        """The evaluations whose inputs load and decode, checked before the first checkpoint of a run.

        Each of the others is skipped for every checkpoint of the run, said once, and counted as a failure
        (exit code 1); the decoded sets stay in ``inputs`` for the checkpoints.
        """
        usable = []
        for name in evals:
            key = (inputs.image_size, name)
            if key not in self.input_problems:
                try:
                    prepare_evaluation(name, inputs)
                    self.input_problems[key] = None
                except ClipdashError as exc:
                    self.input_problems[key] = str(exc)
            problem = self.input_problems[key]
            if problem is None:
                usable.append(name)
                continue
            log.error("%s skipped for every checkpoint of %s: %s", name, run, problem)
            self.failures.append(f"{run}: {name} skipped ({problem})")
        return usable

    def evaluate(
        self,
        spec: ModelSpec,
        ref: CheckpointRef,
        loaded: LoadedModel,
        inputs: RunInputs,
        text: TextEncoder,
        evals: list[str],
    ) -> CheckpointResult:
        text.start_checkpoint(loaded)
        ctx = CheckpointContext(loaded, inputs, text, self.device, self.batch_size, self.args.templates)
        results = []
        bar = tqdm(evals, desc=f"epoch {ref.epoch}", leave=False)
        for name in bar:
            bar.set_postfix_str(name)
            results.append(run_evaluation(name, ctx))
        return CheckpointResult(
            ref.run,
            ref.epoch,
            spec.text,
            ref.arch,
            spec.source,
            str(ref.path) if ref.path else None,
            sha256_of(ref.path) if ref.path else None,
            results,
        )


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
        summary = summary_table(writer.path)
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
    print(f"done in {time.time() - start:.1f} s -> {args.db}")
    if job.failures:
        print(f"{len(job.failures)} checkpoint(s) or evaluation(s) failed and were skipped:", file=sys.stderr)
        for failure in job.failures:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK
