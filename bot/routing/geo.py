"""Point-in-polygon for grid polygons ([longitude, latitude] pairs, WGS-84).

Grid cells are a few hundred metres wide, so treating degrees as planar
coordinates is accurate enough; no projection is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]  # (lon, lat)


def point_in_polygon(lon: float, lat: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Ray casting: is (lon, lat) inside `polygon` ([[lon, lat], ...], open or closed)?

    Points exactly on an edge may fall either way; adjacent grids share edges,
    and a resident standing on the line can belong to either.
    """
    n = len(polygon)
    if n < 3:
        return False
    inside = False
    x, y = lon, lat
    x1, y1 = polygon[-1][0], polygon[-1][1]
    for vertex in polygon:
        x2, y2 = vertex[0], vertex[1]
        # Edge straddles the horizontal line through the point (half-open,
        # so a vertex on the line is counted once)...
        if (y1 > y) != (y2 > y):
            # ...and crosses it to the right of the point.
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
        x1, y1 = x2, y2
    return inside


@dataclass(frozen=True)
class Polygon:
    """A polygon with its bounding box, so most misses cost four comparisons."""

    points: tuple[Point, ...]
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @classmethod
    def of(cls, points: Sequence[Sequence[float]]) -> Polygon:
        pts = tuple((float(p[0]), float(p[1])) for p in points)
        if len(pts) < 3:
            raise ValueError("a polygon needs at least 3 points")
        lons = [p[0] for p in pts]
        lats = [p[1] for p in pts]
        return cls(pts, min(lons), min(lats), max(lons), max(lats))

    def contains(self, lat: float, lon: float) -> bool:
        if not (self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat):
            return False
        return point_in_polygon(lon, lat, self.points)
