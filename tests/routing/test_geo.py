"""Point-in-polygon ([lon, lat] pairs)."""

from __future__ import annotations

import pytest

from bot.routing.geo import Polygon, point_in_polygon

SQUARE = [[117.0, 36.0], [117.1, 36.0], [117.1, 36.1], [117.0, 36.1]]
# A "U": the notch between the arms is outside.
U_SHAPE = [
    [0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3],
]  # fmt: skip


@pytest.mark.parametrize(
    ("lon", "lat", "inside"),
    [
        (117.05, 36.05, True),
        (117.0001, 36.0999, True),
        (116.99, 36.05, False),
        (117.05, 36.2, False),
        (117.2, 36.05, False),
    ],
)
def test_square(lon, lat, inside) -> None:
    assert point_in_polygon(lon, lat, SQUARE) is inside
    assert Polygon.of(SQUARE).contains(lat, lon) is inside


def test_closed_ring_is_the_same_polygon() -> None:
    closed = SQUARE + [SQUARE[0]]
    assert point_in_polygon(117.05, 36.05, closed)
    assert not point_in_polygon(117.15, 36.05, closed)


@pytest.mark.parametrize(
    ("lon", "lat", "inside"),
    [(0.5, 2, True), (2.5, 2, True), (1.5, 2, False), (1.5, 0.5, True), (1.5, 1.0001, False)],
)
def test_concave(lon, lat, inside) -> None:
    assert point_in_polygon(lon, lat, U_SHAPE) is inside


def test_ray_through_a_vertex_counts_once() -> None:
    diamond = [[0, -1], [1, 0], [0, 1], [-1, 0]]
    assert point_in_polygon(0, 0, diamond)
    assert point_in_polygon(-0.5, 0, diamond)
    assert not point_in_polygon(-1.5, 0, diamond)


def test_degenerate_polygons() -> None:
    assert not point_in_polygon(0, 0, [])
    assert not point_in_polygon(0, 0, [[0, 0], [1, 1]])
    with pytest.raises(ValueError):
        Polygon.of([[0, 0], [1, 1]])


def test_lat_lon_order_is_not_swapped() -> None:
    # Jinan is at lon 117, lat 36; swapping would land in the sea off Japan.
    poly = Polygon.of(SQUARE)
    assert poly.contains(36.05, 117.05)
    assert not poly.contains(117.05, 36.05)
