#!/usr/bin/env bash
# Create .venv at the repository root and install medmat with its training, evaluation and test extras.
# Idempotent: rerunning only installs what is missing. CPU build of torch by default (override TORCH_SPEC).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
# torch first and pinned, so that no dependency pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[train,dev]"
# DeepSpeed without compiling its CUDA ops (ZeRO-2/3 run on CPU for the tests; GPUs JIT-build what they need).
# No build isolation: its setup script then sees the torch above instead of fetching another one.
if ! .venv/bin/python -c "import deepspeed" >/dev/null 2>&1; then
  DS_BUILD_OPS=0 .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation "deepspeed>=0.15"
fi
# lmms-eval (the `lmms` extra) for the exported-task tests, without its heavy dependency set: --no-deps, then
# only what loading a task and scoring it with the llava_hf wrapper import (docs/eval.md, "lmms-eval").
if ! .venv/bin/python -c "import lmms_eval.evaluator, decord" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "lmms-eval==0.7.3"
  .venv/bin/python -m pip install -q --disable-pip-version-check loguru pytz tenacity evaluate sacrebleu decord
fi
.venv/bin/python -c "import medmat_builder, datasets, torch, transformers, trl; print('medmat ready: torch', torch.__version__, '| datasets', datasets.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__)"
