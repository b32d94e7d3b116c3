"""python -m generation.engine.training: `manage.py train_engine` without Django."""

from .cli import main

main()
