"""The one error family axdnn raises: each message names the bad value, where it came from, and
what would have been accepted, so the CLI can print it instead of a traceback."""


class AxError(Exception):
    """Base of every error axdnn raises on bad input."""


class DataError(AxError):
    """A dataset spec or data file is missing, malformed or inconsistent."""


class ModelError(AxError):
    """A model name, factory or architecture is unknown or does not fit."""


class CheckpointError(AxError):
    """A checkpoint file is missing, corrupt or does not match its model."""


class ConfigError(AxError):
    """A configuration value (plan, experiment file, CLI option) is invalid."""


class ShapeError(AxError):
    """A tensor or input shape does not fit what the model or layer expects."""


class MultiplierError(AxError):
    """A multiplier spec, table file or C model is invalid."""


class FormatError(AxError):
    """A number format is invalid."""


class InjectionError(AxError):
    """An error model, injection site or campaign is invalid."""


class DynamicError(AxError):
    """A dynamic-effort setting (mechanism, knob, exit, budget) is invalid or does not fit."""


class RegionError(AxError):
    """A code region (AxBench kernel or user region), its inputs or its search is invalid."""


class CompressionError(AxError):
    """A pruning or weight-sharing request is invalid or cannot be carried out on the model."""


class SearchError(AxError):
    """A design space, objective, strategy or exploration study is invalid."""


class RedcaneError(AxError):
    """Bad input to the ReD-CaNe operation-resilience analysis (operations, noise grid, budget,
    candidates)."""
