"""Results on the bus as Python classes: `Box` (a labelled box, pixels) and `Result` (one
result about one frame). Both also read like the dicts earlier versions returned
(`result["boxes"][0]["label"]`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class _Mapping:
    """`obj["name"]` reads the field `name` (the dict form of earlier versions)."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return [f.name for f in fields(self)]

    def to_dict(self) -> dict:
        """The fields as a plain dict (boxes as dicts too)."""
        return asdict(self)


@dataclass(frozen=True)
class Box(_Mapping):
    """A labelled box in pixels of the frame. `label` is cut to 24 ASCII characters on the
    wire; `score` is a confidence or strength on framebus's one score scale, 0..1
    (docs/results.md)."""

    x: float
    y: float
    w: float
    h: float
    label: str = ""
    score: float = 0.0


@dataclass(frozen=True)
class Result(_Mapping):
    """One result about one frame, as published on the camera's results service."""

    #: The producer's role (`algo`, `motion`, ...).
    producer: str
    #: The frame the result is about.
    frame_id: int
    #: That frame's capture run.
    run_id: int
    #: That frame's capture time, CLOCK_MONOTONIC ns.
    capture_mono_ns: int
    #: When the result was published, CLOCK_MONOTONIC ns.
    publish_mono_ns: int
    #: The overall score, 0..1 (docs/results.md), None when the producer gave none.
    score: float | None
    #: The labelled boxes (up to 16).
    boxes: list[Box] = field(default_factory=list)
    #: The free-form JSON part, decoded (None when empty).
    data: Any = None


def box_tuple(item) -> tuple:
    """A box as given to `publish_result` (Box, dict with x, y, w, h[, label, score], or tuple
    (x, y, w, h[, label[, score]])) as the (x, y, w, h, label, score) the binding takes."""
    if isinstance(item, Box):
        return (float(item.x), float(item.y), float(item.w), float(item.h), str(item.label), float(item.score))
    if isinstance(item, dict):
        x, y, w, h = (float(item[k]) for k in ("x", "y", "w", "h"))
        return (x, y, w, h, str(item.get("label", "")), float(item.get("score", 0.0)))
    x, y, w, h = (float(v) for v in item[:4])
    label = str(item[4]) if len(item) > 4 else ""
    score = float(item[5]) if len(item) > 5 else 0.0
    return (x, y, w, h, label, score)


def from_binding(raw: tuple) -> Result:
    """A result as the binding returns it (producer, ids, times, score, box tuples, JSON text)."""
    producer, frame_id, run_id, capture_ns, publish_ns, score, boxes, text = raw
    return Result(
        producer=producer,
        frame_id=frame_id,
        run_id=run_id,
        capture_mono_ns=capture_ns,
        publish_mono_ns=publish_ns,
        score=score,
        boxes=[Box(x, y, w, h, label, s) for x, y, w, h, label, s in boxes],
        data=None if text is None else json.loads(text),
    )
