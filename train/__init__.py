"""Training: data readers, the synthetic scene generator, FCN models, class-balanced training, eval.

Importing this package does not import TensorFlow; the modules that need it (pipeline, models,
losses, trainer, evaluate) import it themselves.
"""
