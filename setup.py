"""fcnedge: street-scene FCN segmentation from training to an int8 model on an edge device.

The repository keeps the four parts at the top level (runtime/, train/, convert/, benchmarks/);
installed, they live under one namespace, fcnedge.*, so nothing collides with other packages'
`train` or `benchmarks`. `pip install .` brings the runtime alone; `.[train]` adds TensorFlow.
"""
from setuptools import setup

PACKAGE_DIRS = {
    "fcnedge": "fcnedge",
    "fcnedge.runtime": "runtime",
    "fcnedge.train": "train",
    "fcnedge.convert": "convert",
    "fcnedge.benchmarks": "benchmarks",
    "fcnedge.models": "models",      # the bundled CamVid model (see models/README.md)
}

RUNTIME_REQUIRES = [
    "numpy>=1.26",
    "opencv-python>=4.8",
    # The maintained successor of tflite-runtime; tflite_runtime stays a fallback import only.
    "ai-edge-litert>=2.3,<3",
    # TFLite metadata (the card inside each model) is read with it; LiteRT needs it too.
    "flatbuffers>=23.5",
]
TRAIN_REQUIRES = [
    "tensorflow==2.21.*",
    "tf-keras==2.21.*",
    "tensorboard==2.21.*",
    "tensorflow-model-optimization==0.8.1",
    "h5py>=3.10",  # already a TensorFlow dependency; the trainer slims weights files with it
    "matplotlib>=3.8",
]
DEV_REQUIRES = ["pytest>=8", "pytest-xdist>=3"]

setup(
    name="fcnedge",
    version="0.1.0",
    description="Edge-deployment toolkit for street-scene semantic segmentation (FCN, CamVid, int8 TFLite)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"fcnedge.models": ["*.tflite", "*.json", "*.h5", "*.md"]},
    install_requires=RUNTIME_REQUIRES,
    extras_require={"train": TRAIN_REQUIRES, "dev": TRAIN_REQUIRES + DEV_REQUIRES},
    entry_points={"console_scripts": ["fcnedge=fcnedge:console_main"]},
)
