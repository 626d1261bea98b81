"""The settings stored beside every number: what changes a measurement's results, and their id.

A setting is a measurement's own parameters (its params dataclass) plus what the engine does to every
measurement: precision, device type, image decoder, ``--limit`` and how the subset is drawn, a
fingerprint of the data files read and the measurement's ``revision``. Its id is 16 hex digits of
SHA-256 over (measurement, canonical JSON), so resume is "is (checkpoint, setting id) stored?", and a
rerun with other settings adds rows beside the old ones instead of skipping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from clipdash.data.fingerprint import data_fingerprint
from clipdash.measurements import Measurement, get_measurement
from clipdash.precompute.config import EngineConfig
from clipdash.store.settings import canonical_json, setting_id


@dataclass(frozen=True)
class Setting:
    """One measurement's stored settings: ``id`` keys the rows, ``values`` is the JSON stored with them."""

    id: str
    eval: str
    values: dict[str, Any]

    def to_json(self) -> str:
        return canonical_json(self.values)


def _plain(value: Any) -> Any:
    """Tuples as lists, so that a setting read back from JSON compares equal to the one written."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def measurement_setting(measurement: Measurement, config: EngineConfig, classifier: bool = False) -> Setting:
    """The setting ``config`` gives ``measurement`` on the data under ``config.data_root`` (for an ImageNet
    classifier with ``classifier``: its classifier params, so the two protocols never share a setting)."""
    params = measurement.classifier_params(config) if classifier else measurement.params(config)
    values = {
        **dataclasses.asdict(params),
        "precision": "fp32" if classifier else config.precision,  # classifiers always run in float32
        "device": config.torch_device.type,
        "decoder": config.decoder,
        "limit": config.limit,
        "subset": "class_balanced" if config.limit is not None else "all",
        "data": data_fingerprint(config.data_root, measurement.data_folders(config)),
        "revision": measurement.revision,
    }
    values = _plain(values)
    return Setting(setting_id(measurement.name, values), measurement.name, values)


def job_settings(config: EngineConfig, classifier: bool = False) -> dict[str, Setting]:
    """eval name -> its setting, for every measurement the job runs (with ``classifier``: those of them
    that apply to an ImageNet classifier)."""
    config = config.for_classifier() if classifier else config
    names = [n for n in config.evals if not classifier or get_measurement(n).classifier_compute is not None]
    return {name: measurement_setting(get_measurement(name), config, classifier) for name in names}
