"""Captions for world clips, in varied wording, and a parser that reads them back."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .world import ClipSpec

NUMBERS = {1: "a", 2: "two", 3: "three"}
WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
COLOR_WORDS = ("red", "green", "blue", "yellow", "white", "purple", "orange")
SHAPE_WORDS = {
    "ball": "ball",
    "balls": "ball",
    "square": "square",
    "squares": "square",
    "triangle": "triangle",
    "triangles": "triangle",
}
PLURAL = {"ball": "balls", "square": "squares", "triangle": "triangles"}

# (singular verb phrase, plural verb phrase); {dir} is filled or dropped
VERBS = {
    "bounces": [
        ("bounces{dir}", "bounce{dir}"),
        ("is bouncing{dir}", "are bouncing{dir}"),
        ("hops{dir}", "hop{dir}"),
    ],
    "falls": [
        ("falls onto the floor", "fall onto the floor"),
        ("drops to the ground", "drop to the ground"),
        ("falls down", "fall down"),
    ],
    "slides": [
        ("slides{dir}", "slide{dir}"),
        ("glides along the floor{dir}", "glide along the floor{dir}"),
        ("slides across the floor{dir}", "slide across the floor{dir}"),
    ],
    "tossed": [
        ("is tossed upward", "are tossed upward"),
        ("jumps up", "jump up"),
        ("flies up and falls back", "fly up and fall back"),
    ],
}
OCCLUDED_VERBS = {
    "bounces": ("bounces behind a grey wall", "bounce behind a grey wall"),
    "slides": ("slides behind a grey wall", "slide behind a grey wall"),
}
DIRS = {1: [" to the right", " rightward"], -1: [" to the left", " leftward"]}


def _a(noun: str) -> str:
    if noun.startswith("the "):
        return noun
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _noun(obj, with_size: bool, plural: bool = False) -> str:
    if obj.pattern is not None:
        return "the cameo"
    shape = PLURAL[obj.shape] if plural else obj.shape
    words = ([obj.size] if with_size else []) + [obj.color, shape]
    return " ".join(words)


def subject_phrase(spec: ClipSpec, rng: np.random.Generator) -> tuple[str, bool]:
    """Returns the noun phrase and whether it is grammatically plural."""
    objs = spec.objects
    with_size = bool(rng.random() < 0.5)
    same = (
        all(
            (o.color, o.shape, o.size) == (objs[0].color, objs[0].shape, objs[0].size) for o in objs
        )
        and not spec.cameo
    )
    if len(objs) == 1:
        return _a(_noun(objs[0], with_size)), False
    if same:
        return f"{NUMBERS[len(objs)]} {_noun(objs[0], with_size, plural=True)}", True
    parts = []
    for o in objs:
        parts.append(_a(_noun(o, with_size)))
    head = ", ".join(parts[:-1]) + " and " + parts[-1]
    return head, True


def caption_for(spec: ClipSpec, rng: np.random.Generator) -> str:
    subject, plural = subject_phrase(spec, rng)
    dxs = {1 if o.vx > 0 else -1 for o in spec.objects if abs(o.vx) > 1e-6}
    direction = ""
    if len(dxs) == 1 and spec.motion in ("bounces", "slides"):
        opts = DIRS[dxs.pop()]
        direction = opts[rng.integers(len(opts))]
    if spec.occluder_x is not None and spec.motion in OCCLUDED_VERBS:
        verb = OCCLUDED_VERBS[spec.motion][int(plural)]
    else:
        opts = VERBS[spec.motion]
        verb = opts[rng.integers(len(opts))][int(plural)].format(dir=direction)
    text = f"{subject} {verb}"
    if spec.background != "black" and rng.random() < 0.7:
        text += f" on a {spec.background} background"
    return text


def describe(spec: ClipSpec) -> str:
    """A canonical (non-random) caption, used for evaluation prompts."""

    class _Fixed:  # deterministic stand-in for the random choices: first option, sizes on
        def random(self):
            return 0.0

        def integers(self, n):
            return 0

    return caption_for(spec, _Fixed())  # type: ignore[arg-type]


def parse_caption(text: str) -> dict:
    """Read colours, shapes, counts, motion and wall back from a caption.

    Returns {"objects": [{"color", "shape", "count"}], "count": total, "motion", "occluder",
    "cameo"}. Unknown words are ignored, so free-form prompts parse to what is recognisable.
    """
    words = re.findall(r"[a-z]+", text.lower())
    objects = []
    i = 0
    while i < len(words):
        if words[i] in SHAPE_WORDS:
            shape = SHAPE_WORDS[words[i]]
            color, count = None, 1
            j = i - 1
            while j >= 0 and i - j <= 3:
                w = words[j]
                if w in COLOR_WORDS and color is None:
                    color = w
                elif w in WORD_NUMBERS:
                    count = WORD_NUMBERS[w]
                    break
                elif w not in ("small", "large"):
                    break
                j -= 1
            objects.append({"color": color, "shape": shape, "count": count})
        i += 1
    motion = None
    for key, stems in {
        "bounces": ("bounc", "hop"),
        "falls": ("fall onto", "falls onto", "drop", "falls down", "fall down"),
        "slides": ("slid", "glid"),
        "tossed": ("toss", "jump", "fly up", "flies up"),
    }.items():
        if any(s in text.lower() for s in stems):
            motion = key
            break
    return {
        "objects": objects,
        "count": sum(o["count"] for o in objects) + (1 if "cameo" in words else 0),
        "motion": motion,
        "occluder": "wall" in words,
        "cameo": "cameo" in words,
    }
