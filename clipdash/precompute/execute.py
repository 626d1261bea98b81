"""The executor: evaluates the checkpoints of one run and returns results; it never touches the store.

``RunExecutor`` builds the run's architecture once, checks and decodes every input its evaluations read
before the first checkpoint (an evaluation whose data is missing or damaged is reported once and left
out), and turns each ``WorkItem`` into a ``CheckpointResult``. Its inputs (a spec string, the
``EngineConfig``, work items) and outputs (results of plain data and DataFrames) pickle, so a distributed
backend can run it in another process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from clipdash.errors import ClipdashError
from clipdash.measurements import get_measurement
from clipdash.measurements.intervals import checkpoint_intervals
from clipdash.models.encode import SharedPooled, TextEncoder, prepare_model
from clipdash.models.loading import LoadedModel, create_architecture, load_weights
from clipdash.models.spec import parse_model_spec, read_params, run_folder
from clipdash.precompute.cache import DecodedCache
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.context import CheckpointContext, ClassifierContext
from clipdash.precompute.inputs import RunInputs
from clipdash.precompute.plan import WorkItem
from clipdash.precompute.settings import Setting
from clipdash.store import CheckpointResult, EvalResult

log = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_inputs(config: EngineConfig, image_size: int) -> RunInputs:
    """The datasets of ``config`` for one input size (decoded on first use, shared by its runs)."""
    return RunInputs(
        config.data_root,
        image_size,
        config.limit,
        config.splits,
        config.noise_seed,
        config.download,
        config.zeroshot_names,
        DecodedCache(config.cache_dir),
        config.torch_device,
        gpu_decode=config.gpu_decode,
        noise_dataset=config.noise_dataset,
    )


def inputs_key(config: EngineConfig) -> tuple:
    """What of ``config`` the inputs of ``run_inputs`` depend on: a process that serves several jobs (a Ray
    worker) keeps one set of decoded inputs per key, never one job's ``--limit`` for another's."""
    return (
        str(config.data_root),
        config.limit,
        dataclasses.astuple(config.splits),
        config.noise_seed,
        config.noise_dataset,
        config.download,
        config.zeroshot_names,
        str(config.cache_dir),
        config.device,
        config.gpu_decode,
    )


def shared_tables(inputs: RunInputs, evals: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Tables that do not depend on the checkpoint: the class names of every labelled set the run loaded,
    and what each measurement in ``evals`` (those whose inputs loaded) shares (prompts, human baseline)."""
    tables: dict[str, pd.DataFrame] = {}
    labeled = inputs.loaded_labeled_sets()
    if labeled:
        frames = [
            pd.DataFrame(
                {"dataset": name, "label": range(len(data.classnames)), "classname": data.classnames}
            )
            for name, data in labeled.items()
        ]
        tables["classnames"] = pd.concat(frames)
    for name in evals:
        shared = get_measurement(name).shared_tables
        if shared is not None:
            tables.update(shared(inputs))
    return tables


def prepare_measurement(name: str, inputs: RunInputs) -> None:
    """Load and decode everything measurement ``name`` reads; raises ``DatasetError`` naming what is wrong.

    Decoded sets stay in ``inputs`` for the run's checkpoints, so this costs nothing extra.
    """
    measurement = get_measurement(name)
    measurement.files(inputs)
    for key in measurement.image_sets(inputs):
        inputs.pixels(key)


def input_problem(name: str, inputs: RunInputs) -> str | None:
    """Why measurement ``name`` cannot read its data, or None when it can (the data is then loaded and
    decoded in ``inputs``, which also remembers a set that failed, so asking again costs nothing)."""
    try:
        prepare_measurement(name, inputs)
    except ClipdashError as exc:
        return str(exc)
    return None


def run_measurement(
    name: str, ctx: CheckpointContext | ClassifierContext, config: EngineConfig
) -> EvalResult:
    """Run one registered measurement with the parameters ``config`` gives it, and time it (on a CLIP
    checkpoint, or with its classifier compute and params on an ImageNet classifier's context)."""
    measurement = get_measurement(name)
    start = time.perf_counter()
    if isinstance(ctx, ClassifierContext):
        result = measurement.classifier_compute(ctx, measurement.classifier_params(config))
    else:
        result = measurement.compute(ctx, measurement.params(config))
    result.seconds = time.perf_counter() - start
    metrics = pd.DataFrame(result.metrics, columns=["metric", "dataset", "variant", "value"])
    result.intervals = checkpoint_intervals(measurement, result.tables, metrics, config.bootstrap)
    return result


def training_data(tag: str | None, params: dict[str, str] | None) -> str | None:
    """What a model was trained on, as far as its source says: the pretrained tag (open_clip names tags by
    their data, e.g. ``laion2b_s34b_b79k``), else ``train_data`` (open_clip) or ``source`` (clipdash's
    trainer) from the run's params.txt."""
    if tag:
        return tag
    params = params or {}
    return params.get("train_data") or params.get("source")


@dataclass(frozen=True)
class SkippedEvaluation:
    """An evaluation left out for every checkpoint of a run, because its data did not load."""

    run: str
    eval: str
    reason: str


@dataclass(frozen=True)
class FailedCheckpoint:
    """A checkpoint that could not be evaluated (a truncated or mismatched file)."""

    run: str
    epoch: int
    reason: str


Outcome = CheckpointResult | SkippedEvaluation | FailedCheckpoint


class RunExecutor:
    """Evaluates the work items of one run (one architecture), with the inputs of its input size."""

    def __init__(
        self,
        spec_text: str,
        config: EngineConfig,
        settings: Mapping[str, Setting],
        inputs_by_size: dict[int, RunInputs],
        replace: bool = False,
        models: dict[tuple, LoadedModel] | None = None,
        text_encoders: dict[str, TextEncoder] | None = None,
        shared_text: SharedPooled | None = None,
    ):
        self.spec = parse_model_spec(spec_text)
        self.config = config
        self.settings = settings  # eval name -> the setting its results are stored under
        self.replace = replace  # --force: the writer replaces stored rows of these settings
        self.inputs_by_size = inputs_by_size  # shared with other runs of the same input size
        # A Ray worker passes its own, so its tasks build each architecture once and encode a locked text
        # tower's prompts once (TextEncoder keys them by the tower's weights); in-process: one run's.
        self.models = {} if models is None else models
        self.text_encoders = {} if text_encoders is None else text_encoders
        self.shared_text = shared_text  # the Ray backend's: pooled prompt outputs computed once per run

    def run(self, items: Sequence[WorkItem]) -> Iterator[Outcome]:
        """The outcomes of ``items`` as each is ready: skipped evaluations first, then one per checkpoint."""
        if self.spec.source == "classifier":
            yield from self.run_classifier(items)
            return
        first = items[0].ref
        key = (first.arch, first.tag, self.config.device, self.config.precision)
        if key not in self.models:
            self.models[key] = create_architecture(first.arch, first.tag, device=self.config.device)
            prepare_model(self.models[key], self.config.torch_device, self.config.precision)
        loaded = self.models[key]
        if loaded.image_size not in self.inputs_by_size:
            self.inputs_by_size[loaded.image_size] = run_inputs(self.config, loaded.image_size)
        inputs = self.inputs_by_size[loaded.image_size]
        asked = [e for e in self.config.evals if any(e in item.evals for item in items)]
        problems = {name: input_problem(name, inputs) for name in asked}
        usable = [name for name in asked if problems[name] is None]
        for name in asked:
            if problems[name] is not None:
                yield SkippedEvaluation(first.run, name, problems[name])
        items = [WorkItem(item.ref, tuple(e for e in item.evals if e in usable)) for item in items]
        items = [item for item in items if item.evals]
        if self.config.device not in self.text_encoders:
            self.text_encoders[self.config.device] = TextEncoder(self.config.torch_device)
        text = self.text_encoders[self.config.device]
        text.shared = self.shared_text
        shared = shared_tables(inputs, usable) if items else {}
        for item in tqdm(items, desc=self.spec.text, unit="ckpt"):
            try:
                if item.ref.path is not None:
                    load_weights(loaded, item.ref)
                result = self.evaluate(item, loaded, inputs, text)
            except ClipdashError as exc:
                yield FailedCheckpoint(item.ref.run, item.ref.epoch, str(exc))
                continue
            result.shared_tables, shared = shared, {}
            yield result

    def run_classifier(self, items: Sequence[WorkItem]) -> Iterator[Outcome]:
        """An ImageNet-1k classifier baseline (one checkpoint, epoch −1) on the measurements that apply."""
        from clipdash.models.classifiers import load_classifier  # timm: only for classifier runs

        item = items[0]
        key = ("classifier", item.ref.arch, self.config.device)
        try:
            if key not in self.models:
                self.models[key] = load_classifier(item.ref.arch, self.config.torch_device)
        except ClipdashError as exc:
            yield FailedCheckpoint(item.ref.run, item.ref.epoch, str(exc))
            return
        loaded = self.models[key]
        size = loaded.resize_to  # decoded at timm's resize size; the classifier crops its centre
        config = self.config.for_classifier()
        inputs = self.inputs_by_size.get(size)
        if inputs is None or inputs.noise_dataset != config.noise_dataset:  # not a CLIP run's of this size
            inputs = self.inputs_by_size[size] = run_inputs(config, size)
        problems = {name: input_problem(name, inputs) for name in item.evals}
        for name, problem in problems.items():
            if problem is not None:
                yield SkippedEvaluation(item.ref.run, name, problem)
        usable = tuple(name for name in item.evals if problems[name] is None)
        if not usable:
            return
        ctx = ClassifierContext(loaded, inputs, self.config.torch_device, self.config.batch)
        results = []
        for name in tqdm(usable, desc=self.spec.text, unit="eval"):
            result = run_measurement(name, ctx, config)
            result.setting = self.settings[name].id
            results.append(result)
        yield CheckpointResult(
            item.ref.run,
            item.ref.epoch,
            self.spec.text,
            item.ref.arch,
            "classifier",
            None,
            None,
            results,
            shared_tables(inputs, usable),
            n_params=loaded.n_params,
            training_data="ImageNet-1k (supervised)",
            settings={self.settings[n].id: (n, self.settings[n].to_json()) for n in usable},
            replace=self.replace,
        )

    def evaluate(
        self, item: WorkItem, loaded: LoadedModel, inputs: RunInputs, text: TextEncoder
    ) -> CheckpointResult:
        """One checkpoint's evaluations, with its weights already in ``loaded``."""
        ref = item.ref
        text.start_checkpoint(loaded)
        ctx = CheckpointContext(
            loaded, inputs, text, self.config.torch_device, self.config.batch, self.config.templates
        )
        results = []
        bar = tqdm(item.evals, desc=f"epoch {ref.epoch}", leave=False)
        for name in bar:
            bar.set_postfix_str(name)
            result = run_measurement(name, ctx, self.config)
            result.setting = self.settings[name].id
            results.append(result)
        source = self.spec.path
        params = (read_params(run_folder(source)) or None) if source else None
        return CheckpointResult(
            ref.run,
            ref.epoch,
            self.spec.text,
            ref.arch,
            self.spec.source,
            str(ref.path) if ref.path else None,
            sha256_of(ref.path) if ref.path else None,
            results,
            source_path=str(source) if source else None,
            n_params=sum(p.numel() for p in loaded.model.parameters()),
            params=params,
            pretrained_tag=self.spec.tag if self.spec.source == "pretrained" else None,
            training_data=training_data(self.spec.tag if self.spec.source == "pretrained" else None, params),
            settings={self.settings[n].id: (n, self.settings[n].to_json()) for n in item.evals},
            replace=self.replace,
        )
