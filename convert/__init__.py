"""Conversion: TFLite export per format, export-rule inspection, model cards, verification.

`inspect` reads .tflite files with the flatbuffer schema only (no TensorFlow); `export` and
`verify` need the training extra.
"""
