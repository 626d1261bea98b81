"""Exceptions that carry a message meant for the user (the CLI and app show them as they are)."""


class ClipdashError(Exception):
    """Base class: anything the user can fix (a path, a spec, a file)."""


class ModelSpecError(ClipdashError):
    """A model spec string that cannot be parsed or resolved."""


class CheckpointError(ClipdashError):
    """A checkpoint file that cannot be loaded safely (truncated, wrong architecture, unsafe pickle)."""


class DatasetError(ClipdashError):
    """A dataset folder or file that is missing or malformed."""


class ImageDecodeError(ClipdashError):
    """An uploaded image that cannot be decoded safely."""


class StoreError(ClipdashError):
    """A results database that is missing, locked, or of another schema version."""
