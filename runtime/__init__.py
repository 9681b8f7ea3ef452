"""TensorFlow-free runtime: labels, preprocessing, metrics and the TFLite streaming pipeline.

Nothing under fcnedge.runtime may import TensorFlow or Keras: it is what ships to the device.
"""
