"""Small charts drawn on the server as SVG (ADR 0040): a bar chart (the aging buckets) and a line
chart (a KPI month by month). No script and no style attribute (the CSP forbids inline styles):
presentation is by class, in console.css; places and sizes are SVG attributes. Every mark has a
`<title>` (what a pointer or a screen reader shows) and a `data-` attribute naming what it stands
for, and every text is escaped. The figures themselves are in the table beside each chart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup

WIDTH, HEIGHT = 560, 220
#: Room for the axis' figures (left) and the labels under the marks (bottom).
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 14, 34


@dataclass(frozen=True)
class Mark:
    """One bar or point: its key (a bucket, a month), the label under it, its value (None: no
    figure, e.g. a DSO without credit sales), and the text of its title."""

    key: str
    label: str
    value: Decimal | None
    title: str


def _scale(values: Sequence[Decimal | None]) -> tuple[Decimal, Decimal]:
    """The axis' low and high ends: from 0 (or the lowest negative value) to the highest value,
    never an empty range."""
    known = [v for v in values if v is not None]
    high = max([Decimal(0), *known])
    low = min([Decimal(0), *known])
    if high == low:
        high = low + 1
    return low, high


def _y(value: Decimal, low: Decimal, high: Decimal) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner * float((high - value) / (high - low))


def _frame(kind: str, label: str, low: Decimal, high: Decimal, axis: Callable[[Decimal], str], body: list[Markup]) -> Markup:
    grid = []
    for value in (low, (low + high) / 2, high) if low < 0 else (Decimal(0), high / 2, high):
        y = _y(value, low, high)
        grid.append(
            Markup('<line class="grid" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"/>'
                   '<text class="axis" x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
                LEFT, y, WIDTH - RIGHT, y, LEFT - 6, y + 4, axis(value)
            )
        )
    return Markup(
        '<svg class="chart {kind}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{grid}{body}</svg>'
    ).format(kind=kind, w=WIDTH, h=HEIGHT, label=label, grid=Markup("").join(grid), body=Markup("").join(body))


def bars(marks: Sequence[Mark], *, label: str, axis: Callable[[Decimal], str], name: str = "bucket") -> Markup:
    """A bar per mark, left to right, from the zero line (`data-<name>` is each mark's key)."""
    low, high = _scale([m.value for m in marks])
    inner = WIDTH - LEFT - RIGHT
    step = inner / max(len(marks), 1)
    zero = _y(Decimal(0), low, high)
    body = []
    for i, mark in enumerate(marks):
        x = LEFT + i * step + step * 0.15
        value = mark.value or Decimal(0)
        y = _y(value, low, high)
        top, height = min(y, zero), abs(zero - y)
        body.append(
            Markup('<g class="mark" data-{}="{}"><rect class="bar bar-{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                   '<title>{}</title></rect>'
                   '<text class="label" x="{:.1f}" y="{}" text-anchor="middle">{}</text></g>').format(
                name, mark.key, i, x, top, step * 0.7, max(height, 0.5), mark.title,
                x + step * 0.35, HEIGHT - BOTTOM + 16, mark.label,
            )
        )
    body.append(Markup('<line class="zero" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"/>').format(LEFT, zero, WIDTH - RIGHT, zero))
    return _frame("bars", label, low, high, axis, body)


def line(marks: Sequence[Mark], *, label: str, axis: Callable[[Decimal], str], name: str = "month") -> Markup:
    """A point per mark with a value, joined left to right; a mark without one leaves a gap
    (its label stays on the axis)."""
    low, high = _scale([m.value for m in marks])
    inner = WIDTH - LEFT - RIGHT
    step = inner / max(len(marks), 1)
    body: list[Markup] = []
    run: list[tuple[float, float]] = []
    runs: list[list[tuple[float, float]]] = [run]
    for i, mark in enumerate(marks):
        x = LEFT + i * step + step / 2
        body.append(
            Markup('<text class="label" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(x, HEIGHT - BOTTOM + 16, mark.label)
        )
        if mark.value is None:
            run = []
            runs.append(run)
            continue
        y = _y(mark.value, low, high)
        run.append((x, y))
        body.append(
            Markup('<circle class="point" data-{}="{}" cx="{:.1f}" cy="{:.1f}" r="4"><title>{}</title></circle>').format(
                name, mark.key, x, y, mark.title
            )
        )
    lines = [
        Markup('<polyline class="series" points="{}"/>').format(" ".join(f"{x:.1f},{y:.1f}" for x, y in r))
        for r in runs
        if len(r) > 1
    ]
    return _frame("line", label, low, high, axis, lines + body)

