"""Supervised fine-tuning of vision-language models on Med-MAT configs and mixtures, with TRL.

One script for one GPU, many GPUs, many nodes and DeepSpeed: the launcher decides, the script does not.

    # a recipe (paper settings) on the configs you name
    accelerate launch --config_file training/accelerate/multi_gpu.yaml training/sft.py \\
        --config training/recipes/llava15_7b.yaml --dataset_name ./medmat \\
        --train_configs subset_25 subset_26 --output_dir runs/llava-25-26

    # a planner mixture by name (or by the file `medmat plan --out` wrote)
    accelerate launch training/sft.py --config training/recipes/qwen2vl_7b.yaml \\
        --dataset_name ./medmat --mixture related:subset_28

    # seconds on a CPU, with a tiny model created on the fly
    python training/sft.py --config training/recipes/tiny_cpu.yaml

Like TRL's ``trl/scripts/sft.py``, this script only parses and calls the package: the logic
(arguments, mixtures, data, the leakage guard, model, trainer) is :mod:`medmat_builder.train`, and
``medmat train ...`` or ``accelerate launch -m medmat_builder.train ...`` run the same from an
installed package. Flags: ``--help`` and docs/training.md.
"""

from medmat_builder.scripts import run_script
from medmat_builder.train import main

if __name__ == "__main__":
    run_script(lambda: main(prog="training/sft.py"))
