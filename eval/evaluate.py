"""Per-config accuracy of a vision-language model on Med-MAT configs (multiple choice and grounding).

    python eval/evaluate.py --model_name_or_path llava-hf/llava-1.5-7b-hf --dataset_name ./medmat \\
        --configs subset_28 subset_03 --mode likelihood --batch_size 16 --output_dir runs/eval
    accelerate launch --num_processes 8 eval/evaluate.py ...   # data-parallel, one shard per process

The logic is :mod:`medmat_builder.evaluate` (its :mod:`~medmat_builder.evaluate.cli` holds these
flags); ``medmat eval ...`` and ``python -m medmat_builder.evaluate ...`` run the same from an
installed package. Flags: ``--help`` and docs/eval.md.
"""

from medmat_builder.scripts import run_script
from medmat_builder.evaluate.cli import main

if __name__ == "__main__":
    run_script(lambda: main(prog="eval/evaluate.py"))
