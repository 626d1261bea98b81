"""``python -m clipdash.train``: train a small CLIP on captioned images, one checkpoint per epoch.

Example (the bundled run)::

    python -m clipdash.train --images ../shared/data/cifar10/train \
        --templates ../shared/data/prompts/cifar10.json --out runs/cifar10-vit-t4-minilm --epochs 30
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import open_clip
import torch

from clipdash.data.decode import decode_images
from clipdash.errors import ClipdashError
from clipdash.models.configs import register_builtin_configs, register_model_config
from clipdash.train.captions import from_caption_csv, from_image_folder, load_templates
from clipdash.train.loop import TrainConfig, train, write_params

DEFAULT_MODEL = "clipdash-vit-t4-minilm"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipdash.train", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--images", type=Path, help="image folder <class>/<image> (captions from --templates)"
    )
    source.add_argument("--captions", type=Path, help="CSV with image,caption columns")
    parser.add_argument("--templates", type=Path, help="CLIP prompts JSON (templates, optional classes)")
    parser.add_argument("--limit-per-class", type=int, default=None, help="use the first N images per class")
    parser.add_argument("--out", type=Path, required=True, help="run directory for params.txt and epoch_K.pt")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="open_clip architecture with an HF text tower")
    parser.add_argument("--model-config", type=Path, action="append", default=[], help="extra config JSON")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    register_builtin_configs()
    for path in args.model_config:
        register_model_config(path)
    if args.images is not None:
        if args.templates is None:
            raise ClipdashError("--images needs --templates (a prompts JSON with a 'templates' list)")
        templates, classnames = load_templates(args.templates)
        data = from_image_folder(args.images, templates, classnames, args.limit_per_class)
    else:
        data = from_caption_csv(args.captions)
    model = open_clip.create_model(args.model, pretrained=None)
    if not hasattr(model, "text") or not hasattr(model.text, "pooler"):
        raise ClipdashError(f"{args.model}: training needs a Hugging Face text tower (LiT); see README")
    tokenizer = open_clip.get_tokenizer(args.model)
    size = (
        model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    )
    images = decode_images(data.paths, size, desc="decode training images")
    config = TrainConfig(
        args.model, args.epochs, args.batch_size, args.lr, args.weight_decay, args.seed, args.device
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_params(
        args.out,
        config,
        {"train_images": len(images), "captions": len(data.captions), "source": args.images or args.captions},
    )
    start = time.time()
    mean, std = model.visual.preprocess_cfg["mean"], model.visual.preprocess_cfg["std"]
    history = train(model, tokenizer, data, images, args.out, config, mean, std)
    (args.out / "history.json").write_text(
        json.dumps({"seconds": time.time() - start, "epochs": history}, indent=1)
    )
    return history


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except ClipdashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
