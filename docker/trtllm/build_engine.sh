#!/usr/bin/env bash
# Build the TensorRT-LLM engine of a generated repository, inside NVIDIA's Triton TensorRT-LLM image
# (nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3, on the GPU model that will serve it).
#
#   twin serve trtllm --version N --out /path/to/models        # on any machine: version N's models
#   docker run --rm --gpus all -v /path/to/models:/models \
#     -v /path/to/tensorrtllm_backend:/tensorrtllm_backend \
#     nvcr.io/nvidia/tritonserver:24.08-trtllm-python-py3 \
#     bash /models/build_engine.sh /models/trtllm_assets/vN
#
# TRTLLM_BACKEND_DIR: a checkout of triton-inference-server/tensorrtllm_backend at the tag that
# matches the image's TensorRT-LLM version (it holds NVIDIA's model.py files and, in its
# tensorrt_llm submodule, the convert_checkpoint.py scripts). Default: /tensorrtllm_backend.
set -euo pipefail

ASSETS=${1:?usage: build_engine.sh <repository>/trtllm_assets/v<N>}
REPO=$(cd "$ASSETS/../.." && pwd)
BACKEND=${TRTLLM_BACKEND_DIR:-/tensorrtllm_backend}
read_build() { python3 -c "import json,sys; print(json.load(open('$ASSETS/build.json'))['$1'])"; }
# NVIDIA's model name -> this version's (preprocessing -> preprocessing_vN, ...)
model_name() { python3 -c "import json,sys; print(json.load(open('$ASSETS/build.json'))['models']['$1'])"; }

CONVERTER=$(read_build converter)
DTYPE=$(read_build dtype)
MAX_BATCH=$(read_build max_batch_size)
MAX_INPUT=$(read_build max_input_len)
MAX_SEQ=$(read_build max_seq_len)
WEIGHTS=$(read_build weights_sha256)

command -v trtllm-build >/dev/null || { echo "trtllm-build not found: run inside NVIDIA's TensorRT-LLM Triton image" >&2; exit 2; }
nvidia-smi -L >/dev/null 2>&1 || { echo "no GPU visible: engines are built on the GPU that serves them" >&2; exit 2; }

convert=""
for candidate in \
  "$BACKEND/tensorrt_llm/examples/models/core/$CONVERTER/convert_checkpoint.py" \
  "$BACKEND/tensorrt_llm/examples/$CONVERTER/convert_checkpoint.py" \
  "/app/tensorrt_llm/examples/$CONVERTER/convert_checkpoint.py"; do
  if [[ -f "$candidate" ]]; then convert=$candidate; break; fi
done
[[ -n "$convert" ]] || { echo "convert_checkpoint.py for '$CONVERTER' not found under $BACKEND" >&2; exit 2; }

if [[ -n "$WEIGHTS" && -f "$ASSETS/engine/weights.sha256" \
      && "$(cat "$ASSETS/engine/weights.sha256")" == "$WEIGHTS" ]]; then
  echo "== engine already built from these weights ($WEIGHTS): $ASSETS/engine"
else
  echo "== convert $ASSETS/hf ($CONVERTER, $DTYPE)"
  python3 "$convert" --model_dir "$ASSETS/hf" --output_dir "$ASSETS/checkpoint" --dtype "$DTYPE"

  echo "== trtllm-build (max batch $MAX_BATCH, input $MAX_INPUT, sequence $MAX_SEQ)"
  trtllm-build --checkpoint_dir "$ASSETS/checkpoint" --output_dir "$ASSETS/engine" \
    --gemm_plugin auto --gpt_attention_plugin auto \
    --max_batch_size "$MAX_BATCH" --max_input_len "$MAX_INPUT" --max_seq_len "$MAX_SEQ" \
    --paged_kv_cache enable --remove_input_padding enable --use_paged_context_fmha enable
  echo "$WEIGHTS" > "$ASSETS/engine/weights.sha256"
fi

echo "== NVIDIA's model.py files into this version's Python models"
for model in preprocessing postprocessing tensorrt_llm_bls; do
  cp -r "$BACKEND/all_models/inflight_batcher_llm/$model/1/." "$REPO/$(model_name "$model")/1/"
done
# NVIDIA's BLS names the models it calls in its code: point it at this version's pipeline.
bls="$REPO/$(model_name tensorrt_llm_bls)/1"
for file in "$bls/model.py" "$bls/lib/triton_decoder.py"; do
  [[ -f "$file" ]] || continue
  sed -i \
    -e "s/preproc_model_name=\"preprocessing\"/preproc_model_name=\"$(model_name preprocessing)\"/" \
    -e "s/postproc_model_name=\"postprocessing\"/postproc_model_name=\"$(model_name postprocessing)\"/" \
    -e "s/llm_model_name=\"tensorrt_llm\"/llm_model_name=\"$(model_name tensorrt_llm)\"/" \
    "$file"
done
rm -rf "$ASSETS/checkpoint"
echo "engine ready: $ASSETS/engine; start Triton on $REPO (tritonserver --model-repository=$REPO)"
