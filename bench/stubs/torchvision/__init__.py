"""Stand-in for torchvision in the peers benchmark environment (`make bench-peers`).

dalle-pytorch 1.6.6 and taming-transformers import torchvision at module level but
the benchmarked code paths never call it, and no torchvision build matches the
CPU torch 2.13.0 wheel. Importing this package and naming its attributes works.
Calling those attributes or reading anything from them raises RuntimeError, so a
benchmark that reaches torchvision fails loudly instead of timing a fake.
"""

from __future__ import annotations

from typing import Any, NoReturn

# torchmetrics 0.10.3 reads the version at import time. A version below 0.8 makes it
# skip `from torchvision.ops import ...`, which this stand-in could not satisfy.
__version__ = "0.0.0+stub"


def _fail(name: str) -> NoReturn:
    raise RuntimeError(f"{name} was used, but torchvision is a stub in the peers benchmark environment")


class _Unavailable:
    """Placeholder for a torchvision attribute: any use raises RuntimeError."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        _fail(f"{self._name}.{attribute}")

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        _fail(self._name)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Unavailable(f"torchvision.{name}")
