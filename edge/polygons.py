"""Whether a list of points can outline a zone: enough points, an area, no crossing edges.

Pure geometry on relative (0..1) points; the zone models validate their polygons with it and
the error says which edges cross, so an installer can find the bad point.
"""

from __future__ import annotations


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    def orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(c, d, a), orient(c, d, b)
    d3, d4 = orient(a, b, c), orient(a, b, d)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4)


def polygon_problem(points: list[tuple[float, float]]) -> str | None:
    """Why a polygon cannot be a zone (too few points, no area, self-crossing); None if fine."""
    if len(points) < 3:
        return f"a polygon needs at least 3 points, got {len(points)}"
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            if j in (i, (i + 1) % n, (i - 1) % n) or i == (j + 1) % n:
                continue  # neighbouring edges share a vertex
            if _segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return f"polygon edges {i} and {j} cross each other"
    area2 = 0.0
    for i, (x1, y1) in enumerate(points):
        x2, y2 = points[(i + 1) % len(points)]
        area2 += x1 * y2 - x2 * y1
    if abs(area2) / 2 < 1e-4:
        return "polygon has (almost) no area: its points are collinear or repeated"
    return None
