"""The executor: evaluates the checkpoints of one run and returns results; it never touches the store.

``RunExecutor`` builds the run's architecture once, checks and decodes every input its evaluations read
before the first checkpoint (an evaluation whose data is missing or damaged is reported once and left
out), and turns each ``WorkItem`` into a ``CheckpointResult``. Its inputs (a spec string, the
``EngineConfig``, work items) and outputs (results of plain data and DataFrames) pickle, so a distributed
backend can run it in another process.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from clipdash.data.cue_conflict import load_human_trials
from clipdash.errors import ClipdashError
from clipdash.evals.class_agnostic import GENERIC_PROMPTS
from clipdash.evals.cue_conflict import human_shape_bias
from clipdash.models.encode import TextEncoder, prepare_model
from clipdash.models.loading import LoadedModel, create_architecture, load_weights
from clipdash.models.spec import parse_model_spec, read_params, run_folder
from clipdash.precompute.cache import DecodedCache
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.context import CheckpointContext
from clipdash.precompute.evaluations import prepare_evaluation, run_evaluation
from clipdash.precompute.inputs import RunInputs
from clipdash.precompute.plan import WorkItem
from clipdash.store import CheckpointResult

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
    )


def shared_tables(inputs: RunInputs, evals: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Tables that do not depend on the checkpoint: class names, the generic prompts, the human baseline.

    ``evals`` are those whose inputs loaded, so every set named here is loaded.
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


def input_problem(name: str, inputs: RunInputs) -> str | None:
    """Why evaluation ``name`` cannot read its data, or None when it can (the data is then loaded and
    decoded in ``inputs``, which also remembers a set that failed, so asking again costs nothing)."""
    try:
        prepare_evaluation(name, inputs)
    except ClipdashError as exc:
        return str(exc)
    return None


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

    def __init__(self, spec_text: str, config: EngineConfig, inputs_by_size: dict[int, RunInputs]):
        self.spec = parse_model_spec(spec_text)
        self.config = config
        self.inputs_by_size = inputs_by_size  # shared with other runs of the same input size

    def run(self, items: Sequence[WorkItem]) -> Iterator[Outcome]:
        """The outcomes of ``items`` as each is ready: skipped evaluations first, then one per checkpoint."""
        first = items[0].ref
        loaded = create_architecture(first.arch, first.tag, device=self.config.device)
        prepare_model(loaded, self.config.torch_device, self.config.precision)
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
        text = TextEncoder(self.config.torch_device)
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
            results.append(run_evaluation(name, ctx))
        source = self.spec.path
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
            params=(read_params(run_folder(source)) or None) if source else None,
        )
