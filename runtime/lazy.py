"""Package-level names imported on first use (PEP 562), for the packages' public APIs."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str], namespace: dict):
    """A module `__getattr__` serving `exports` (public name -> submodule that defines it), and
    the sorted `__all__`. Importing the package then costs nothing and pulls in no dependency
    of a submodule the caller never touches (TensorFlow above all); each name, once fetched, is
    kept in `namespace` (the package's globals()) so the lookup happens once."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    return __getattr__, sorted(exports)
