"""Training: data readers, the synthetic scene generator, FCN models, class-balanced training, eval.

Importing this package does not import TensorFlow; the modules that need it (pipeline, models,
losses, trainer, evaluate) import it themselves.

The public API: `from fcnedge.train import train, TrainConfig, ModelConfig, AugmentConfig,
load_trained_model, build_fcn`; each name imports TensorFlow only when it is first used.
"""
from __future__ import annotations

import importlib

# The public names, each from the module that defines it; imported on first use, so importing
# the package costs nothing and pulls in no dependency of a module the caller never touches.
_EXPORTS = {
    "train": "trainer",
    "TrainConfig": "config",
    "load_trained_model": "weights",
    "ModelConfig": "config",
    "build_fcn": "models",
    "AugmentConfig": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
