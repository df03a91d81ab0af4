"""Is a stationary object still there? Its place compared with the empty scene (pure numpy).

A parked car or a dumped bag that the detector stops seeing is either gone (towed, picked up)
or hidden (a passer-by, a bus in front of it). The tracker alone cannot tell: it keeps a lost
stationary track for ``tracker.max_lost_stationary_s`` so that occlusion does not restart the
dwell, which used to keep the event open a minute after the object had gone.

The motion gate keeps the *empty scene*, frozen under tracked objects (`edge.motion`). When
the object's place looks like that empty scene again, nothing stands there: the object is gone.
While it looks like anything else (the object itself, a bus, a person), the object counts as
present or occluded and its dwell keeps running. A zone's ``end_after_s`` says how long the
place must look empty, with the detector missing the object, before its event ends.

The comparison compensates the overall brightness (the patch's mean against the scene's), so a
cloud or the evening does not make a car look like road; what remains is the mean absolute
grey-level difference on the small blurred frame of the gate.
"""

from __future__ import annotations

import numpy as np

from edge import imaging

# Mean absolute grey difference (0..255, after gain compensation) below which a place looks
# like the empty scene. Sensor noise and JPEG on the blurred small frame give ~2-4; a car or a
# bag on asphalt 25+; a person in front 20+.
SAME_SCENE_MAD = 9.0
# Patches smaller than this (small-frame pixels) are too small to judge: never "empty".
_MIN_PIXELS = 12


def looks_empty(empty: imaging.FloatArray, current: imaging.FloatArray) -> bool:
    """True if `current` (the place now) looks like `empty` (the place before the object)."""
    if empty.shape != current.shape or empty.size < _MIN_PIXELS:
        return False
    gain = float(empty.mean()) / max(float(current.mean()), 1.0)
    mad = float(np.mean(np.abs(empty - current * np.float32(gain))))
    return mad < SAME_SCENE_MAD
