"""Stationary objects remembered across lost tracks, nights and restarts (pure; JSON on disk).

A zombie car (僵尸车) stands for days. Its track does not: the detector misses it at night or in
the rain for longer than ``tracker.max_lost_stationary_s``, and the node restarts. Each time a
new track is born and its stationary clock would start from zero. This memory keeps every
stationary object of one camera — where it stands, what it looks like, since when it stands —
and when a new track becomes stationary at the same place (IoU >= 0.5 with the remembered box)
looking the same (correlation >= 0.5 of the normalised grey thumbnail of its box,
`edge.imaging.look`, which survives a change of light), the track inherits the remembered
"stationary since".

An object is forgotten when its track moves off (the car drove away) or is removed as gone
(`edge.vacancy`), or when it has not been seen for ``tracker.remember_stationary_s``.

The memory is pure; `to_json`/`from_json` give its state, and `save`/`load` write it
atomically to a file of the camera (``edge.app`` calls them).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import ObjectCategory
from edge import imaging
from edge.boxes import RelBox, iou

# Same place: the detector's boxes of one parked car overlap this much from day to day.
_SAME_PLACE_IOU = 0.5
# Same look: correlation of normalised thumbnails; another car in the same spot scores lower,
# the same car at dusk or in the rain higher.
_SAME_LOOK = 0.5
_VERSION = 1


class MemoryFileError(ValueError):
    """The memory file cannot be read; the message names the file."""


@dataclass
class Remembered:
    """One stationary object."""

    category: ObjectCategory
    class_name: str
    box: RelBox
    since: float
    """When it stopped: the stationary clock a re-found track inherits."""
    last_seen: float
    look: imaging.FloatArray
    photo: bytes | None = None
    """A JPEG of the scene when it was first remembered (the "before" of a zombie ticket)."""


@dataclass
class StationaryMemory:
    """The remembered stationary objects of one camera, and which live track is which."""

    remember_s: float
    objects: list[Remembered] = field(default_factory=list)
    _links: dict[int, Remembered] = field(default_factory=dict)
    dirty: bool = False
    """Changed since the last `save` (an object added, forgotten or re-found)."""

    def linked(self, track_id: int) -> Remembered | None:
        """The remembered object a live track is, if known."""
        return self._links.get(track_id)

    def recall(
        self, category: ObjectCategory, box: RelBox, look: imaging.FloatArray
    ) -> Remembered | None:
        """The unlinked object at this place that looks like this, best match first."""
        taken = {id(o) for o in self._links.values()}
        best: tuple[float, Remembered] | None = None
        for obj in self.objects:
            if id(obj) in taken or obj.category is not category:
                continue
            if iou(obj.box, box) < _SAME_PLACE_IOU:
                continue
            score = float(np.mean(obj.look * look)) if obj.look.shape == look.shape else -1.0
            if score >= _SAME_LOOK and (best is None or score > best[0]):
                best = (score, obj)
        return best[1] if best else None

    def link(self, track_id: int, obj: Remembered) -> None:
        """Track `track_id` is the remembered `obj` (found again)."""
        self._links[track_id] = obj
        self.dirty = True

    def add(self, track_id: int, obj: Remembered) -> None:
        """Remember a new stationary object, seen as track `track_id`."""
        self.objects.append(obj)
        self._links[track_id] = obj
        self.dirty = True

    def seen(self, track_id: int, now: float) -> None:
        """The linked object was seen at `now` (not worth a save by itself)."""
        if (obj := self._links.get(track_id)) is not None:
            obj.last_seen = now

    def unlink(self, track_id: int) -> None:
        """The track was lost: the object may still be there (night, a bus, a restart)."""
        self._links.pop(track_id, None)

    def forget(self, track_id: int) -> None:
        """The track's object left (moved off, or its place looks empty)."""
        obj = self._links.pop(track_id, None)
        if obj is not None:
            self.objects = [o for o in self.objects if o is not obj]
            self.dirty = True

    def expire(self, now: float) -> None:
        """Forget unlinked objects not seen for `remember_s`."""
        linked = {id(o) for o in self._links.values()}
        kept = [o for o in self.objects if id(o) in linked or now - o.last_seen <= self.remember_s]
        if len(kept) != len(self.objects):
            self.objects = kept
            self.dirty = True

    def to_json(self) -> dict[str, object]:
        """The remembered objects as JSON-ready data (links are not kept: tracks die)."""
        return {
            "version": _VERSION,
            "objects": [
                {
                    "category": o.category.value,
                    "class_name": o.class_name,
                    "box": list(o.box),
                    "since": o.since,
                    "last_seen": o.last_seen,
                    "look": [round(float(v), 4) for v in o.look.ravel()],
                    "look_shape": list(o.look.shape),
                    "photo": base64.b64encode(o.photo).decode() if o.photo else None,
                }
                for o in self.objects
            ],
        }

    @classmethod
    def from_json(cls, data: object, remember_s: float) -> StationaryMemory:
        """The memory saved by `to_json`; raises ValueError for anything else."""
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError(f"not a stationary memory of version {_VERSION}")
        objects = []
        for item in data["objects"]:
            x1, y1, x2, y2 = (float(v) for v in item["box"])
            shape = tuple(int(v) for v in item["look_shape"])
            objects.append(
                Remembered(
                    category=ObjectCategory(item["category"]),
                    class_name=str(item["class_name"]),
                    box=(x1, y1, x2, y2),
                    since=float(item["since"]),
                    last_seen=float(item["last_seen"]),
                    look=np.asarray(item["look"], dtype=np.float32).reshape(shape),
                    photo=base64.b64decode(item["photo"]) if item.get("photo") else None,
                )
            )
        return cls(remember_s=remember_s, objects=objects)

    def save(self, path: Path) -> None:
        """Write the memory atomically (a crash leaves the old file or the new one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json()), encoding="utf-8")
        tmp.replace(path)
        self.dirty = False

    @classmethod
    def load(cls, path: Path, remember_s: float) -> StationaryMemory:
        """The memory in `path`, or an empty one if there is no file yet."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(remember_s=remember_s)
        except OSError as exc:
            raise MemoryFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        try:
            return cls.from_json(json.loads(text), remember_s)
        except (ValueError, KeyError, TypeError) as exc:
            raise MemoryFileError(f"{path}: not a stationary memory file: {exc}") from exc
