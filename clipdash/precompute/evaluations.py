"""The evaluation registry: each entry turns a checkpoint context into stored rows via clipdash.evals, and
declares the image sets and files it reads (checked once per run, before the first checkpoint).

These functions only route embeddings to the pure metric functions and shape their output into the
store's long tables; all arithmetic lives in ``clipdash.evals``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from clipdash.data.cue_conflict import load_imagenet16_indices
from clipdash.data.prompts import imagenet_templates
from clipdash.data.types import LabeledImages
from clipdash.evals import class_agnostic, cue_conflict, noise, quality, tid2013, zeroshot
from clipdash.precompute.context import CheckpointContext
from clipdash.precompute.inputs import SEVERITIES, RunInputs, first_per_class
from clipdash.store import EvalResult, format_variant

Rows = list[tuple[str, str, str, float]]


def _rows(values: dict[str, float], dataset: str, **variant: object) -> Rows:
    return [(metric, dataset, format_variant(**variant), float(value)) for metric, value in values.items()]


def _zero_shot(ctx: CheckpointContext, data: LabeledImages, key: str) -> dict[str, float]:
    """Zero-shot metrics of image set ``key``, scored against ``data``'s labels (the same rows)."""
    classifier = ctx.classifier(data.classnames, data.templates)
    labels = torch.as_tensor(data.labels)
    return zeroshot.zero_shot_metrics(ctx.features(key), classifier, labels)


def evaluate_zeroshot(ctx: CheckpointContext) -> EvalResult:
    """Zero-shot acc1/acc5/mean-per-class recall on every test set present."""
    rows: Rows = []
    for name in ctx.inputs.zeroshot_names:
        values = {
            **_zero_shot(ctx, ctx.inputs.labeled(name), name),
            "n_images": len(ctx.inputs.labeled(name)),
        }
        rows += _rows(values, name, templates=ctx.template_set)
    return EvalResult("zeroshot", 0.0, rows)


def evaluate_noise(ctx: CheckpointContext) -> EvalResult:
    """CIFAR-10 with Gaussian noise (CIFAR-C recipe), severities 1–5; noise_drop = (clean-noisy)/clean.

    Each set is scored against its own labels; the clean set is the one the noisy rows were made from.
    """
    clean = _zero_shot(ctx, ctx.inputs.noise_clean, ctx.inputs.noise_clean_key)["acc1"]
    dataset = "cifar10-c/gaussian_noise"
    rows: Rows = []
    drops, accuracies = [], []
    for severity in SEVERITIES:
        values = _zero_shot(ctx, ctx.inputs.noisy[severity], f"{dataset}/{severity}")
        drop = noise.noise_drop(clean, values["acc1"])
        accuracies.append(values["acc1"])
        drops.append(drop)
        rows += _rows({**values, "noise_drop": drop}, dataset, templates=ctx.template_set, severity=severity)
    summary = {"acc1": float(np.mean(accuracies)), "noise_drop": float(np.mean(drops))}
    rows += _rows(summary, dataset, templates=ctx.template_set, severity="mean")
    return EvalResult("noise", 0.0, rows)


def evaluate_tid2013(ctx: CheckpointContext) -> EvalResult:
    """cosine(reference, distorted) vs MOS on the TID2013 pairs present (partial copies are flagged)."""
    data = ctx.inputs.tid2013
    reference = ctx.features("tid2013/reference")[torch.as_tensor(data.reference_index)]
    similarity = tid2013.cosine_similarity_pairs(reference.numpy(), ctx.features("tid2013/distorted").numpy())
    values = tid2013.tid2013_alignment(similarity, data.mos, data.distortion)
    rows: Rows = []
    for key, value in values.items():
        metric, _, distortion = key.partition("/distortion=")
        rows += _rows({metric: value}, "tid2013", distortion=distortion or "all")
    rows += _rows({"n_missing": data.n_missing, "n_listed": data.n_listed}, "tid2013", distortion="all")
    return EvalResult("tid2013", 0.0, rows)


def evaluate_livec(ctx: CheckpointContext) -> EvalResult:
    """No-reference quality: softmax over ("Good photo.", "Bad photo.") vs LIVE-C MOS."""
    prompts = ctx.prompt_features(list(quality.ANTONYM_PROMPTS))
    scores = quality.antonym_quality_scores(ctx.features("livec").numpy(), prompts.numpy(), ctx.logit_scale)
    values = quality.quality_alignment(scores, ctx.inputs.livec.mos)
    return EvalResult("livec", 0.0, _rows(values, "livec", prompts="good_bad"))


def _decision_rows(
    protocol: str, names, shape, texture, decision, shape_score, texture_score
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "protocol": protocol,
            "image": names,
            "shape_class": shape,
            "texture_class": texture,
            "decision": decision,
            "shape_score": np.asarray(shape_score, dtype=float),
            "texture_score": np.asarray(texture_score, dtype=float),
        }
    )


def _bias_rows(frame: pd.DataFrame, protocol: str, template_set: str) -> Rows:
    overall = cue_conflict.shape_bias(frame)
    rows = _rows(overall, "cue-conflict", protocol=protocol, templates=template_set)
    rows += _rows(
        {"texture_bias": 1 - overall["shape_bias"]}, "cue-conflict", protocol=protocol, templates=template_set
    )
    per_class = cue_conflict.shape_bias_per_class(frame)
    for shape_class, row in per_class.iterrows():
        values = {"shape_bias": row["shape_bias"], "texture_bias": 1 - row["shape_bias"]}
        rows += _rows(
            values, "cue-conflict", protocol=protocol, templates=template_set, **{"class": shape_class}
        )
    return rows


def evaluate_cue_conflict(ctx: CheckpointContext) -> EvalResult:
    """Cue-conflict: the two-prompt vote and the 16-class decisions (direct and ImageNet-1000 mean rule)."""
    data = ctx.inputs.cue_conflict
    features = ctx.features("cue-conflict")
    classnames = list(data.classnames)
    classifier16 = ctx.classifier(classnames, imagenet_templates())
    column = {name: i for i, name in enumerate(classnames)}
    shape_idx = torch.tensor([column[c] for c in data.shape_class])
    texture_idx = torch.tensor([column[c] for c in data.texture_class])

    vote = cue_conflict.two_prompt_vote(
        features.numpy(), classifier16.T[shape_idx].numpy(), classifier16.T[texture_idx].numpy()
    )
    decisions = np.where(vote["texture_wins"], data.texture_class, data.shape_class)
    frames = [
        _decision_rows(
            "two_prompt",
            data.names,
            data.shape_class,
            data.texture_class,
            decisions,
            vote["shape_score"],
            vote["texture_score"],
        )
    ]

    probs16 = torch.softmax(ctx.logit_scale * features @ classifier16, dim=-1).numpy()
    imagenet = ctx.classifier(list(IMAGENET_CLASSNAMES), imagenet_templates())
    probs1000 = torch.softmax(ctx.logit_scale * features @ imagenet, dim=-1).numpy()
    indices = load_imagenet16_indices(ctx.inputs.data_root)
    probs_mean = cue_conflict.imagenet_to_16_mean(probs1000, indices, classnames)
    rows = np.arange(len(data.names))
    for protocol, probs in (("sixteen_class", probs16), ("imagenet_mean", probs_mean)):
        frames.append(
            _decision_rows(
                protocol,
                data.names,
                data.shape_class,
                data.texture_class,
                cue_conflict.sixteen_class_decisions(probs, classnames),
                probs[rows, shape_idx.numpy()],
                probs[rows, texture_idx.numpy()],
            )
        )
    metrics: Rows = []
    for frame in frames:
        metrics += _bias_rows(frame, frame["protocol"].iloc[0], ctx.template_set)
    return EvalResult("cue_conflict", 0.0, metrics, {"cue_conflict_decisions": pd.concat(frames)})


def _probe_splits(ctx: CheckpointContext):
    train, test = ctx.inputs.probe_train, ctx.inputs.labeled("cifar10")
    return train, test, ctx.features("cifar10/probe_train").numpy(), ctx.features("cifar10").numpy()


def _feature_rows(
    split: str, index: np.ndarray, labels: np.ndarray, vectors: np.ndarray, column: str
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "cifar10",
            "split": split,
            "image_index": index.astype(np.int32),
            "label": labels.astype(np.int32),
            column: list(vectors.astype(np.float32)),
        }
    )


def evaluate_probe(ctx: CheckpointContext) -> EvalResult:
    """Linear probes (logistic regression, linear SVM) on standardised CIFAR-10 image embeddings."""
    train, test, train_x, test_x = _probe_splits(ctx)
    rows: Rows = []
    for classifier in ("logreg", "linear_svm"):
        values = ctx.linear_probe(train_x, train.labels, test_x, test.labels, classifier)
        rows += _rows(values, "cifar10", classifier=classifier, n_train=len(train_x))
    per_class = ctx.inputs.splits.embeddings
    tables = [
        _feature_rows(split, index, data.labels[index], x[index], "embedding")
        for split, data, x in (("train", train, train_x), ("test", test, test_x))
        for index in [first_per_class(data.labels, per_class)]
    ]
    return EvalResult("probe", 0.0, rows, {"image_embeddings": pd.concat(tables)})


def evaluate_class_agnostic(ctx: CheckpointContext) -> EvalResult:
    """Probes on softmax(cos/τ) over 32 generic prompts: τ sweep (fixed C and CV-tuned C) and entropies."""
    train, test, train_x, test_x = _probe_splits(ctx)
    sizes = ctx.inputs.splits
    train_index = first_per_class(train.labels, sizes.class_agnostic_train)
    test_index = first_per_class(test.labels, sizes.class_agnostic_test)
    prompts = ctx.prompt_features(list(class_agnostic.GENERIC_PROMPTS)).numpy()
    train_cos, test_cos = train_x[train_index] @ prompts.T, test_x[test_index] @ prompts.T
    train_y, test_y = train.labels[train_index], test.labels[test_index]
    rows: Rows = []
    for mode, tune in (("fixed", False), ("cv", True)):
        sweep = class_agnostic.tau_sweep(train_cos, train_y, test_cos, test_y, tune_C=tune)
        for record in sweep.to_dict("records"):
            rows += _rows(
                {"ca_acc1": record["acc1"], "ca_C": record["C"]}, "cifar10", C=mode, tau=record["tau"]
            )
    entropy_frames = []
    for tau in class_agnostic.TAU_GRID:
        entropy = class_agnostic.entropy(class_agnostic.softmax_with_temperature(test_cos, tau))
        rows += _rows({"mean_entropy": float(np.mean(entropy))}, "cifar10", tau=tau)
        entropy_frames.append(
            pd.DataFrame(
                {
                    "dataset": "cifar10",
                    "tau": float(tau),
                    "image_index": test_index.astype(np.int32),
                    "entropy": entropy,
                }
            )
        )
    features = pd.concat(
        [
            _feature_rows("train", train_index, train_y, train_cos, "cosines"),
            _feature_rows("test", test_index, test_y, test_cos, "cosines"),
        ]
    )
    return EvalResult(
        "class_agnostic",
        0.0,
        rows,
        {"entropies": pd.concat(entropy_frames), "class_agnostic_features": features},
    )


@dataclass(frozen=True)
class Evaluation:
    """A registered evaluation: how it turns a checkpoint context into rows, and what it reads from disk.

    ``image_sets`` names the ``RunInputs`` keys it encodes; ``files`` loads whatever else it reads (raising
    ``DatasetError``), so that a missing or damaged input is found before the first checkpoint.
    """

    compute: Callable[[CheckpointContext], EvalResult]
    image_sets: Callable[[RunInputs], tuple[str, ...]]
    files: Callable[[RunInputs], object] = lambda inputs: None
    #: Moved by more than 0.5 points with bf16 weights on the bundled run (CPU, benchmarks/
    #: precision_deltas.py): small image sets, where one changed decision or rank is worth more.
    bf16_sensitive: bool = False


def _cifar10_probe_sets(inputs: RunInputs) -> tuple[str, ...]:
    return ("cifar10/probe_train", "cifar10")


EVALUATIONS: dict[str, Evaluation] = {
    "zeroshot": Evaluation(evaluate_zeroshot, lambda inputs: inputs.zeroshot_names),
    "noise": Evaluation(
        evaluate_noise,
        lambda inputs: (
            inputs.noise_clean_key,
            *(f"cifar10-c/gaussian_noise/{severity}" for severity in SEVERITIES),
        ),
    ),
    "tid2013": Evaluation(
        evaluate_tid2013, lambda inputs: ("tid2013/reference", "tid2013/distorted"), bf16_sensitive=True
    ),
    "livec": Evaluation(evaluate_livec, lambda inputs: ("livec",), bf16_sensitive=True),
    "cue_conflict": Evaluation(
        evaluate_cue_conflict,
        lambda inputs: ("cue-conflict",),
        files=lambda inputs: load_imagenet16_indices(inputs.data_root),
        bf16_sensitive=True,
    ),
    "probe": Evaluation(evaluate_probe, _cifar10_probe_sets),
    "class_agnostic": Evaluation(evaluate_class_agnostic, _cifar10_probe_sets),
}


def list_evaluations() -> list[str]:
    return list(EVALUATIONS)


def bf16_sensitive(names: list[str]) -> list[str]:
    """The evaluations among ``names`` that bf16 weights moved beyond half a point."""
    return [name for name in names if EVALUATIONS[name].bf16_sensitive]


def prepare_evaluation(name: str, inputs: RunInputs) -> None:
    """Load and decode everything evaluation ``name`` reads; raises ``DatasetError`` naming what is wrong.

    Decoded sets stay in ``inputs`` for the run's checkpoints, so this costs nothing extra.
    """
    evaluation = EVALUATIONS[name]
    evaluation.files(inputs)
    for key in evaluation.image_sets(inputs):
        inputs.pixels(key)


def run_evaluation(name: str, ctx: CheckpointContext) -> EvalResult:
    """Run one registered evaluation and time it."""
    start = time.perf_counter()
    result = EVALUATIONS[name].compute(ctx)
    result.seconds = time.perf_counter() - start
    return result
