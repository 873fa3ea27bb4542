"""The lifecycle diagram as SVG, drawn on the server from the state machine.

States and transitions come from `domain.lifecycle`; only where each state sits
is decided here, in a fixed grid that reads left to right as a receivable
moves on (a state the grid does not know gets a place in an extra row, so a new
state shows up rather than breaking the page). Self-loops are not drawn: the
commands a state accepts without leaving it are listed in each edge's and
state's title. No Graphviz, no script, no inline style (the CSP forbids it):
presentation is in console.css, by class.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from markupsafe import Markup, escape

from ..domain import lifecycle

#: (column, row) of each state: the way to collection runs left to right (issued, reminded,
#: due, promised, escalated, legal, written off), following up below it, settled above;
#: chosen so that no transition's arrow crosses a state it does not join (a test checks).
PLACES: dict[str, tuple[int, int]] = {
    "issued": (0, 1),
    "reminded": (1, 0),
    "due": (2, 1),
    "following_up": (3, 3),
    "promised": (3, 1),
    "overdue_escalated": (4, 2),
    "legal": (5, 2),
    "settled": (4, 0),
    "written_off": (6, 1),
}
WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 128, 40, 44, 48, 12


def _places() -> dict[str, tuple[int, int]]:
    places = {s: p for s, p in PLACES.items() if s in lifecycle.STATES}
    extra_row = max((r for _, r in places.values()), default=-1) + 1
    for i, state in enumerate(s for s in lifecycle.STATES if s not in places):
        places[state] = (i, extra_row)
    return places


def _box(place: tuple[int, int]) -> tuple[float, float]:
    col, row = place
    return MARGIN + col * (WIDTH + GAP_X), MARGIN + row * (HEIGHT + GAP_Y)


def _edge_points(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float, float, float]:
    """From the border of box `a` to the border of box `b`, along the line between their centres."""
    (ax, ay), (bx, by) = a, b
    acx, acy, bcx, bcy = ax + WIDTH / 2, ay + HEIGHT / 2, bx + WIDTH / 2, by + HEIGHT / 2
    dx, dy = bcx - acx, bcy - acy

    def clip(cx: float, cy: float, sign: int) -> tuple[float, float]:
        scale = min(
            (WIDTH / 2) / abs(dx) if dx else float("inf"),
            (HEIGHT / 2) / abs(dy) if dy else float("inf"),
        )
        return cx + sign * dx * scale, cy + sign * dy * scale

    x1, y1 = clip(acx, acy, 1)
    x2, y2 = clip(bcx, bcy, -1)
    return x1, y1, x2, y2


def render(current: str | None, label: Callable[[str], str] = str) -> Markup:
    """The diagram with `current` marked; `label` translates a state or command name for display."""
    places = _places()
    boxes = {s: _box(p) for s, p in places.items()}
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    loops: dict[str, list[str]] = defaultdict(list)
    for t in lifecycle.transitions():
        if t.source == t.target:
            if t.command not in loops[t.source]:
                loops[t.source].append(t.command)
        elif t.command not in edges[(t.source, t.target)]:
            edges[(t.source, t.target)].append(t.command)
    width = max(x for x, _ in boxes.values()) + WIDTH + MARGIN
    height = max(y for _, y in boxes.values()) + HEIGHT + MARGIN
    title = escape(label("Receivable lifecycle"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lifecycle" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-labelledby="lifecycle-title">',
        f'<title id="lifecycle-title">{title}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-head"/></marker></defs>',
    ]
    for (source, target), commands in edges.items():
        x1, y1, x2, y2 = _edge_points(boxes[source], boxes[target])
        kind = "edge from-current" if source == current else "edge"
        names = escape(", ".join(label(c) for c in commands))
        parts.append(
            f'<line class="{kind}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" marker-end="url(#arrow)">'
            f"<title>{escape(label(source))} → {escape(label(target))}: {names}</title></line>"
        )
    for state, (x, y) in boxes.items():
        classes = "state current" if state == current else "state"
        if state in lifecycle.FINAL_STATES:
            classes += " final"
        stays = ", ".join(label(c) for c in loops.get(state, []))
        tip = f"{label(state)}" + (f" ⟲ {stays}" if stays else "")
        mark = ' aria-current="true"' if state == current else ""
        parts.append(
            f'<g class="{classes}" data-state="{escape(state)}"{mark}><title>{escape(tip)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{WIDTH}" height="{HEIGHT}" rx="8"/>'
            f'<text x="{x + WIDTH / 2:.0f}" y="{y + HEIGHT / 2 + 5:.0f}" text-anchor="middle">{escape(label(state))}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
