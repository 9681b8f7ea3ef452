#!/bin/sh
# The recipe behind the README's published table and Pareto plot:
#   sh benchmarks/recipe.sh RUN_DIR DATA_DIR OUT_DIR
# builds every TFLite format from a trained run (int8-qat fine-tunes it with QAT) and benches
# them, with the float Keras model as its own row, in one run on this machine.
set -eu
RUN=${1:?run folder (e.g. models/camvid_fcn4s_mobilenetv2)}
DATA=${2:?dataset folder (e.g. ../shared/datasets/camvid)}
OUT=${3:-out/published}
FCNEDGE=${FCNEDGE:-fcnedge}
[ -x .venv/bin/fcnedge ] && FCNEDGE=.venv/bin/fcnedge
"$FCNEDGE" convert --model "$RUN" --data "$DATA" --out "$OUT/formats" --overwrite \
    --formats float32,float16,dynamic,int8-ptq,int8-qat --qat-epochs 3 --edgetpu \
    --json "$OUT/convert.json"
"$FCNEDGE" bench --models "$OUT"/formats/*.tflite "$RUN" --data "$DATA" --split val \
    --runs 100 --warmup 10 --out "$OUT/bench" --overwrite --json "$OUT/bench.json"
