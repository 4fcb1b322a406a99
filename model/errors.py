"""Typed errors raised by the dalle library.

The CLI turns each of these into a one-line message and exit status 2. Every
message names the value that failed and what to do about it.
"""


class DalleError(Exception):
    """Base class for every error the library raises on bad input."""


class ConfigError(DalleError, ValueError):
    """A config field has an invalid value."""


class CheckpointError(DalleError):
    """A checkpoint file is missing, unreadable, or does not match the expected layout."""


class DatasetError(DalleError):
    """A dataset folder or codes file is missing, empty, or contains unreadable files."""


class PromptError(DalleError, ValueError):
    """A prompt is empty or otherwise cannot be tokenized."""
