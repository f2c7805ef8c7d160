"""The errors autolabel raises for things a user can get wrong.

Every user-facing failure is an :class:`AutolabelError` (or a subclass) whose message is one line that says
what was expected and what was found. The CLI prints that line and exits with status 2; Python callers can
catch the base class. ``assert`` is kept for internal invariants only.
"""

from __future__ import annotations

__all__ = [
    "AutolabelError",
    "ConfigError",
    "DatasetError",
    "OntologyError",
    "SourceError",
    "TeacherError",
    "UnsafeCheckpointError",
    "WeightsNotFoundError",
]


class AutolabelError(Exception):
    """Base class of every error caused by user input (paths, files, options, weights)."""


class ConfigError(AutolabelError):
    """An option, a command-line argument or a configuration value is invalid."""


class OntologyError(ConfigError):
    """An ontology YAML file is missing, unparsable or has an invalid key."""


class SourceError(AutolabelError):
    """An input folder, image or video cannot be used at all (missing, empty, nothing readable)."""


class DatasetError(AutolabelError):
    """A dataset folder on disk is missing, incomplete or inconsistent."""


class TeacherError(AutolabelError):
    """A teacher cannot be created or cannot run on the given input."""


class WeightsNotFoundError(TeacherError):
    """Model weights could not be found locally nor downloaded."""


class UnsafeCheckpointError(AutolabelError):
    """A checkpoint was refused because loading it could run code (it needs unrestricted unpickling)."""
