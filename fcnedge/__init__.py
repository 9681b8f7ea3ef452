"""fcnedge: train, quantize, run and benchmark FCN street-scene segmentation on edge devices."""

__version__ = "0.1.0"
