#!/usr/bin/env bash
# Set up, build all 53 configs from synthetic raw sources (./medmat_demo_raw -> ./medmat), then run a micro
# compositional-generalization experiment with a tiny random LLaVA and print its Table-3-style table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/medmat build --demo --data-dir medmat_demo_raw --out medmat
.venv/bin/python eval/experiment.py eval/specs/demo_micro_cg.yaml --output_dir runs/demo-micro-cg
echo
echo "Demo export: ./medmat (load with datasets.load_dataset('medmat', 'subset_28') from this folder)."
echo "Experiment table and plots: runs/demo-micro-cg/ (tiny random model, synthetic images: meaningless numbers)."
