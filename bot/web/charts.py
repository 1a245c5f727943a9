"""Charts drawn on the server as inline SVG: a bar chart and a line chart.

No JavaScript and nothing fetched: the page works as delivered, under the
staff pages' Content-Security-Policy. Colours are SVG presentation attributes
(not `style=`, which that policy blocks). Every text that comes from data is
escaped; the SVG scales with its container (viewBox, width 100%).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["COLORS", "Series", "bar_chart", "line_chart", "nice_max"]

COLORS = ("#1565c0", "#1b7f3b", "#c62828", "#9a6200", "#6a1b9a", "#00838f")
TEXT = "#1f2328"
MUTED = "#5f6b7a"
GRID_LINE = "#d8dee4"
FONT = 'font-family="sans-serif"'
_HEX = re.compile(r"^#[0-9a-fA-F]{3,8}$")


def _color(value: str, index: int = 0) -> str:
    """Only #rgb colours reach the SVG attribute (the caller's value is code, but still)."""
    return value if _HEX.match(value or "") else COLORS[index % len(COLORS)]


def _num(value: float) -> str:
    """Coordinates with at most one decimal."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _value_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def nice_max(value: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step) with the step 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return float(ticks), 1.0
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if step < 1 and float(value).is_integer():
        step = 1.0  # counts: no fractional ticks
    return step * math.ceil(value / step), float(step)


def _svg(width: int, height: int, title: str, body: list[str], kind: str) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart chart-{kind}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{label}" '
        'preserveAspectRatio="xMinYMin meet">'
        f"<title>{label}</title>" + "".join(body) + "</svg>"
    )


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    bar_height: int = 20,
    gap: int = 8,
    label_chars: int = 12,
    color: str = COLORS[0],
    empty_text: str = "暂无数据",
) -> Markup:
    """Horizontal bars, one per (label, value), in the given order.

    Long labels are shortened on the chart; the whole label is in the bar's
    tooltip (<title>).
    """
    label_width = 14 * label_chars + 8
    value_width = 48
    top = 8
    if not items:
        height = 40
        body = [
            f'<text x="{width // 2}" y="24" text-anchor="middle" fill="{MUTED}" '
            f'font-size="14" {FONT}>{escape(empty_text)}</text>'
        ]
        return _svg(width, height, title, body, "bar")
    height = top * 2 + len(items) * (bar_height + gap) - gap
    biggest = max((v for _, v in items), default=0) or 1
    span = width - label_width - value_width
    fill = _color(color)
    body = []
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_height + gap)
        bar = max(span * max(value, 0) / biggest, 0)
        middle = y + bar_height / 2
        full = escape(f"{label}：{_value_text(value)}")
        body.append(
            f"<g><title>{full}</title>"
            f'<text x="{label_width - 8}" y="{_num(middle)}" dy="0.35em" text-anchor="end" '
            f'fill="{TEXT}" font-size="13" {FONT}>{escape(_clip(str(label), label_chars))}</text>'
            f'<rect x="{label_width}" y="{y}" width="{_num(bar)}" height="{bar_height}" '
            f'rx="3" fill="{fill}"/>'
            f'<text x="{_num(label_width + bar + 6)}" y="{_num(middle)}" dy="0.35em" '
            f'fill="{MUTED}" font-size="12" {FONT}>{escape(_value_text(value))}</text></g>'
        )
    return _svg(width, height, title, body, "bar")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str = ""


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 720,
    height: int = 260,
    max_x_labels: int = 10,
) -> Markup:
    """One line per series over the x `labels` (e.g. days), with a legend,
    y grid lines, and a tooltip on every point."""
    left, right, top, bottom = 40, 24, 30, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for s in series for v in s.values), default=0)
    axis_max, step = nice_max(peak)
    count = len(labels)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / axis_max

    body: list[str] = []
    # legend
    lx = left
    for index, s in enumerate(series):
        c = _color(s.color, index)
        body.append(
            f'<rect x="{lx}" y="8" width="12" height="12" rx="2" fill="{c}"/>'
            f'<text x="{lx + 16}" y="18" fill="{TEXT}" font-size="13" {FONT}>'
            f"{escape(s.name)}</text>"
        )
        lx += 16 + 14 * len(s.name) + 20
    # y grid and labels
    tick = 0.0
    while tick <= axis_max + 1e-9:
        ty = _num(y(tick))
        body.append(
            f'<line x1="{left}" y1="{ty}" x2="{width - right}" y2="{ty}" stroke="{GRID_LINE}" '
            f'stroke-width="1"/><text x="{left - 6}" y="{ty}" dy="0.35em" text-anchor="end" '
            f'fill="{MUTED}" font-size="11" {FONT}>{escape(_value_text(tick))}</text>'
        )
        tick += step
    # x labels (every k-th, and the last)
    every = max(1, math.ceil(count / max_x_labels))
    for i, label in enumerate(labels):
        if i % every and i != count - 1:
            continue
        if i != count - 1 and count - 1 - i < every / 2:
            continue  # too close to the last label, which is always shown
        body.append(
            f'<text x="{_num(x(i))}" y="{height - 8}" text-anchor="middle" fill="{MUTED}" '
            f'font-size="11" {FONT}>{escape(label)}</text>'
        )
    # lines and points
    for index, s in enumerate(series):
        c = _color(s.color, index)
        values = list(s.values)[:count]
        if not values:
            continue
        points = " ".join(f"{_num(x(i))},{_num(y(v))}" for i, v in enumerate(values))
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{c}" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
        for i, v in enumerate(values):
            tip = escape(f"{labels[i]} {s.name}：{_value_text(v)}")
            body.append(
                f'<circle cx="{_num(x(i))}" cy="{_num(y(v))}" r="3" fill="{c}">'
                f"<title>{tip}</title></circle>"
            )
    return _svg(width, height, title, body, "line")
