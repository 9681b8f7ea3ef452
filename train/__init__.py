"""Training: data readers, the synthetic scene generator, FCN models, class-balanced training, eval.

Importing this package does not import TensorFlow; the modules that need it (input_pipeline,
models, losses, trainer, evaluate) import it themselves.

The public API: `from fcnedge.train import train, TrainConfig, ModelConfig, AugmentConfig,
load_trained_model, TrainedModel, build_fcn`; the configs never import TensorFlow, the
others only when first used.
"""
from __future__ import annotations

from fcnedge.runtime.lazy import lazy_exports

# The public names, each from the submodule that defines it, imported on first use.
_EXPORTS = {
    "train": "trainer",
    "TrainConfig": "config",
    "load_trained_model": "weights",
    "TrainedModel": "weights",
    "ModelConfig": "config",
    "build_fcn": "models",
    "AugmentConfig": "config",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
