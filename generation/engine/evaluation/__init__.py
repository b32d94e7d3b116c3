"""Evaluating the engine by image analysis of generated clips on held-out prompts.

analysis.py   colour segmentation, blobs, objects, shapes, tracks, the world's trajectory
              that best explains a track (physics, permanence), ballistic fits (numpy)
metrics.py    the per-clip metrics and their summary over a set of clips
targets.py    the quality targets, defined once, judged on 95 % intervals
report.py     the markdown table of a report and the model card's generated section
run.py        the driver (`manage.py evaluate_engine`): generate, score, write the report

Importing this package loads numpy only; the driver imports torch when it builds an engine.
"""

from .run import evaluate_engine
from .targets import TARGETS

__all__ = ["TARGETS", "evaluate_engine"]
