"""The bundled CamVid model: .tflite files with their cards (see README.md here)."""
