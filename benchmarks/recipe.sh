#!/bin/sh
# The recipe behind the README's published table and Pareto plot:
#   sh benchmarks/recipe.sh RUN_DIR DATA_DIR OUT_DIR
# builds every TFLite format from a trained run: float32, float16, dynamic and a per-channel
# int8-ptq, then per-tensor int8-ptq and int8-qat (QAT fine-tunes it; this int8-qat is the file
# the project bundles), and float32/int8-ptq exports at 224x224, then benches them all with the
# float Keras model as its own row, in one run on this machine. Each TFLite row also streams
# the val split as a video (drawing and mp4 writing on) and times a cold `fcnedge run`.
# Every file ends at the head's stride (`--output-size head`: the runtime resizes the labels,
# not the logits), so the formats compare like for like and the bundled file is one of them.
set -eu
RUN=${1:?run folder (e.g. models/camvid_fcn2s_mobilenetv2)}
DATA=${2:?dataset folder (e.g. ../shared/datasets/camvid)}
OUT=${3:-out/published}
FCNEDGE=${FCNEDGE:-fcnedge}
[ -x .venv/bin/fcnedge ] && FCNEDGE=.venv/bin/fcnedge
"$FCNEDGE" convert --model "$RUN" --data "$DATA" --out "$OUT/formats" --overwrite \
    --formats float32,float16,dynamic,int8-ptq --edgetpu --output-size head \
    --json "$OUT/convert.json"
"$FCNEDGE" convert --model "$RUN" --data "$DATA" --out "$OUT/per_tensor" --overwrite \
    --formats int8-ptq,int8-qat --qat-epochs 3 --per-tensor --edgetpu --output-size head \
    --json "$OUT/convert_per_tensor.json"
"$FCNEDGE" convert --model "$RUN" --data "$DATA" --out "$OUT/formats_224" --overwrite \
    --formats float32,int8-ptq --input-size 224x224 --output-size head \
    --json "$OUT/convert_224.json"
"$FCNEDGE" data clip --source "$DATA/val" --out "$OUT/val_clip.mp4" --fps 30
"$FCNEDGE" bench --models "$OUT"/formats/*.tflite "$OUT"/per_tensor/*.tflite \
    "$OUT"/formats_224/*.tflite "$RUN" --data "$DATA" --split val \
    --runs 100 --warmup 10 --stream "$OUT/val_clip.mp4" \
    --out "$OUT/bench" --overwrite --json "$OUT/bench.json"
