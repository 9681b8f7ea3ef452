"""Benchmarks: accuracy versus speed for every model format, one process per row.

Importing this package does not import TensorFlow; only a Keras row's worker process does.
"""
