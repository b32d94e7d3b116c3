"""python -m generation.engine.evaluation: `manage.py evaluate_engine` without Django."""

from .run import main

main()
