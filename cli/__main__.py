"""Allow `python -m dalle.cli`."""

from .main import entry

entry()
