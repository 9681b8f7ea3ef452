#!/usr/bin/env bash
# `make arm-check`: the runtime-only install on aarch64 under user-mode emulation, its masks
# against this machine's on a few CamVid val frames (agreement, and each one's mIoU there).
#
# There is no Arm hardware here: qemu-aarch64-static runs Debian's arm64 python3.11 (an
# unpacked root, no chroot, as this machine has no binfmt_misc). ai-edge-litert 2.3's aarch64
# interpreter segfaults under qemu 7.2 in allocate_tensors; tflite-runtime 2.14, the runtime's
# fallback import, runs. It is built against numpy 1, hence numpy<2 and OpenCV 4.10 there.
# Needs root for dpkg --add-architecture and apt-get the first time (the root is kept).
set -euo pipefail
ARM=${ARM:-out/arm}
MODEL=${MODEL:-models/camvid_fcn2s_mobilenetv2_int8-qat.tflite}
DATA=${DATA:-../shared/datasets/camvid}
FRAMES=${FRAMES:-3}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}

command -v qemu-aarch64-static >/dev/null || {
    echo "arm-check: needs qemu-aarch64-static (apt-get install qemu-user-static)" >&2; exit 2; }
[ -d "$DATA/val" ] || { echo "arm-check: DATA=$DATA has no val/ folder (CamVid)" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "arm-check: MODEL=$MODEL is not a file" >&2; exit 2; }

if [ ! -x "$ARM/root/usr/bin/python3.11" ]; then
    echo "arm-check: unpacking Debian's arm64 python3.11 into $ARM/root"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances python3.11:arm64 | grep '^[a-z].*:arm64$' | sort -u)
    mkdir -p "$ARM/debs" "$ARM/root"
    (cd "$ARM/debs" && apt-get download -qq $packages)
    for deb in "$ARM"/debs/*.deb; do dpkg-deb -x "$deb" "$ARM/root"; done
fi
if [ ! -d "$ARM/site/tflite_runtime" ]; then
    "$PY" -m pip install --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_34_aarch64 --platform manylinux_2_27_aarch64 \
        --platform manylinux2014_aarch64 --target "$ARM/site" \
        "numpy<2" "opencv-python-headless<4.11" flatbuffers "tflite-runtime==2.14.0"
fi

rm -rf "$ARM/frames" "$ARM/masks_arm" "$ARM/masks_x86"
mkdir -p "$ARM/frames"
for frame in $(ls "$DATA/val" | head -n "$FRAMES"); do cp "$DATA/val/$frame" "$ARM/frames/"; done
PYTHONPATH="$ARM/site:$PWD" PYTHONHOME="$ARM/root/usr" qemu-aarch64-static -L "$ARM/root" \
    "$ARM/root/usr/bin/python3.11" -m fcnedge run --no-window --model "$MODEL" \
    --source "$ARM/frames" --masks "$ARM/masks_arm" --threads "$THREADS" --json "$ARM/arm.json"
"$PY" -m fcnedge run --no-window --model "$MODEL" --source "$ARM/frames" \
    --masks "$ARM/masks_x86" --threads "$THREADS" --json "$ARM/x86.json"
"$PY" - "$ARM" "$DATA" "$MODEL" <<'PYTHON'
import json, sys
from pathlib import Path

import cv2
import numpy as np

from fcnedge.runtime.metrics import confusion_matrix, scores_from_confusion
from fcnedge.runtime.preprocess import read_mask
from fcnedge.runtime.segmenter import Segmenter

arm, data, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
labels = Segmenter(model).labels
frames = sorted((arm / "frames").glob("*.png"))
counts = {"aarch64": 0, "x86_64": 0}
same = total = 0
for index, frame in enumerate(frames):
    name = f"{index:06d}.png"
    masks = {"aarch64": cv2.imread(str(arm / "masks_arm" / name), cv2.IMREAD_UNCHANGED),
             "x86_64": cv2.imread(str(arm / "masks_x86" / name), cv2.IMREAD_UNCHANGED)}
    truth = read_mask(data / "valannot" / frame.name, labels)
    for machine, mask in masks.items():
        counts[machine] += confusion_matrix(truth, mask, labels.num_classes, labels.void_id)
    same += int((masks["aarch64"] == masks["x86_64"]).sum())
    total += masks["x86_64"].size
runs = {machine: json.loads((arm / f"{tag}.json").read_text())
        for machine, tag in (("aarch64", "arm"), ("x86_64", "x86"))}
result = {"model": model, "frames": len(frames), "pixel_agreement": round(100 * same / total, 2),
          **{f"{machine}_miou": round(100 * scores_from_confusion(
              matrix, labels.class_names).mean_iou, 2) for machine, matrix in counts.items()},
          "aarch64_interpreter": runs["aarch64"]["interpreter"]["backend"],
          "x86_64_interpreter": runs["x86_64"]["interpreter"]["backend"],
          "aarch64_invoke_p50_ms_emulated": runs["aarch64"]["stages_ms"]["invoke"].get("p50")}
(arm / "arm_check.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
PYTHON
