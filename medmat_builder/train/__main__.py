"""``python -m medmat_builder.train`` (also under ``accelerate launch -m``): the same as ``training/sft.py``."""

from medmat_builder.scripts import run_script
from medmat_builder.train.trainer import main

if __name__ == "__main__":
    run_script(lambda: main(prog="python -m medmat_builder.train"))
