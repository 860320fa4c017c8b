"""Charts drawn on the server as SVG: the geometry here, the markup in ``api/templates/pages/_charts.html``.

No chart library and nothing fetched by the browser: a chart is a few paths and text in the page, so it
prints, works without JavaScript and passes the Content-Security-Policy (attributes, never ``style=``).
Every chart also says what it shows in words (its ``summary``) for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.recalls.dashboard import Curve

WIDTH = 640


def _fmt_time(t: datetime, span_seconds: float) -> str:
    """An axis label: the date, with the time when the chart spans less than a week."""
    return t.strftime("%m-%d %H:%M") if span_seconds < 7 * 86400 else t.strftime("%Y-%m-%d")


@dataclass
class Marker:
    """A vertical line at a moment (a deadline, now), with its label."""

    x: float
    label: str
    kind: str  # css class: deadline | main-deadline | now
    title: str = ""


@dataclass
class CurveChart:
    """The acknowledgement curve: step paths of consignees sent and acknowledged against time."""

    width: int
    height: int
    left: float
    top: float
    plot_w: float
    plot_h: float
    sent_path: str
    ack_path: str
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    markers: list[Marker] = field(default_factory=list)
    total_y: float = 0.0


def curve_chart(
    curve: Curve, *, deadlines: list[tuple[datetime, str, bool]], now: datetime | None = None
) -> CurveChart:
    """Geometry of the curve; ``deadlines`` are (when, label, is the main one) drawn as vertical lines."""
    width, height = WIDTH, 260
    left, right, top, bottom = 48.0, 16.0, 20.0, 40.0
    pw, ph = width - left - right, height - top - bottom
    span = max((curve.end - curve.start).total_seconds(), 1.0)
    total = max(curve.total, 1)

    def x_of(t: datetime) -> float:
        return round(left + (t - curve.start).total_seconds() / span * pw, 1)

    def y_of(n: int) -> float:
        return round(top + ph - n / total * ph, 1)

    def steps(values: list[int]) -> str:
        if not values:
            return ""
        n = len(values)
        parts = [f"M{left},{y_of(0)}"]
        for i, v in enumerate(values):
            x0 = round(left + i / n * pw, 1)
            x1 = round(left + (i + 1) / n * pw, 1)
            parts.append(f"H{x0}V{y_of(v)}H{x1}")
        return "".join(parts)

    x_ticks = []
    for k in range(5):
        t = curve.start + (curve.end - curve.start) * (k / 4)
        x_ticks.append((x_of(t), _fmt_time(t, span)))
    y_values = sorted({0, total // 2, total}) if total > 1 else [0, total]
    y_ticks = [(y_of(v), str(v)) for v in y_values]
    markers = [
        Marker(x_of(when), label, "main-deadline" if main else "deadline", title=when.isoformat())
        for when, label, main in deadlines
        if curve.start <= when <= curve.end
    ]
    if now is not None and curve.start <= now <= curve.end:
        markers.append(Marker(x_of(now), "", "now", title=now.isoformat()))
    return CurveChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=pw,
        plot_h=ph,
        sent_path=steps(curve.sent),
        ack_path=steps(curve.acknowledged),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        markers=markers,
        total_y=y_of(total),
    )


@dataclass
class FunnelBar:
    """One stage of the funnel: its bar (centred, as wide as its share) and its numbers."""

    key: str
    count: int
    percent: int
    x: float
    y: float
    w: float


@dataclass
class Funnel:
    """Planned → sent → delivered → opened → acknowledged, as centred bars."""

    width: int
    height: int
    bar_h: float
    bars: list[FunnelBar]


def funnel(stages: list[tuple[str, int]]) -> Funnel:
    """Bars for ``stages`` ((key, count), the first being everyone), as wide as their share of the first."""
    width, bar_h, gap = WIDTH, 30.0, 10.0
    area_left, area_w = 170.0, 360.0
    first = max(stages[0][1], 1) if stages else 1
    bars = []
    for i, (key, count) in enumerate(stages):
        share = count / first
        w = max(round(area_w * share, 1), 2.0 if count else 0.0)
        bars.append(
            FunnelBar(
                key=key,
                count=count,
                percent=round(100 * share),
                x=round(area_left + (area_w - w) / 2, 1),
                y=i * (bar_h + gap),
                w=w,
            )
        )
    return Funnel(width=width, height=int(len(stages) * (bar_h + gap)), bar_h=bar_h, bars=bars)


@dataclass
class GraphNode:
    """A box of the genealogy graph: one lot, or the lots of one product at one level."""

    key: str
    label: str
    sub: str
    depth: int
    x: float
    y: float
    kind: str  # origin | lot | group
    href: str
    lots: int = 1


@dataclass
class GraphEdge:
    """A link from the lot (or group) a lot was first reached through to that lot (or its group)."""

    d: str
    count: int
    weight: float


@dataclass
class Graph:
    """The genealogy drawn by level: columns of boxes, left to right, with the links between them."""

    width: int
    height: int
    node_w: int
    node_h: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    columns: list[tuple[float, int, int]]  # (x, depth, lots at that depth)
    hidden_levels: int = 0


NODE_W, NODE_H, COL_GAP, ROW_GAP, TOP = 156, 42, 48, 12, 30


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def genealogy_graph(
    lots: list, *, per_level: int, max_levels: int, lot_href, level_href, group_sub, others_label: str
) -> Graph:
    """Boxes and links of a traced genealogy (``TracedLot`` items with depth and path). A level with more
    than ``per_level`` lots is drawn as one box per product (the largest first, the rest in one box), so
    the drawing stays readable for a lot that reaches thousands; levels past ``max_levels`` are left to the
    lists below it. Each lot is linked from the lot it was first reached through (its path's last step)."""
    by_depth: dict[int, list] = {}
    for lot in lots:
        by_depth.setdefault(lot.depth, []).append(lot)
    depths = sorted(by_depth)
    shown = depths[:max_levels]
    node_of: dict[str, str] = {}  # lot label -> node key
    nodes: list[GraphNode] = []
    columns = []
    tallest = 1
    for col, depth in enumerate(shown):
        x = 10 + col * (NODE_W + COL_GAP)
        level = by_depth[depth]
        columns.append((x, depth, len(level)))
        boxes: list[GraphNode] = []
        if len(level) <= per_level:
            for lot in level:
                label = f"{lot.product_code}/{lot.lot_number}"
                key = f"lot:{lot.lot_id}"
                node_of[label] = key
                boxes.append(
                    GraphNode(
                        key=key,
                        label=_short(label),
                        sub=_short(lot.product_name),
                        depth=depth,
                        x=x,
                        y=0,
                        kind="origin" if depth == 0 else "lot",
                        href=lot_href(lot),
                    )
                )
        else:
            counts: dict[str, int] = {}
            for lot in level:
                counts[lot.product_code] = counts.get(lot.product_code, 0) + 1
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            named = dict(ranked[: per_level - 1]) if len(ranked) > per_level else dict(ranked)
            others = sum(n for code, n in ranked if code not in named)
            for code, n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0])):
                boxes.append(
                    GraphNode(
                        f"g:{depth}:{code}",
                        _short(code),
                        group_sub(n),
                        depth,
                        x,
                        0,
                        "group",
                        level_href(depth),
                        lots=n,
                    )
                )
            if others:
                boxes.append(
                    GraphNode(
                        f"g:{depth}:*",
                        _short(others_label),
                        group_sub(others),
                        depth,
                        x,
                        0,
                        "group",
                        level_href(depth),
                        lots=others,
                    )
                )
            for lot in level:
                code = lot.product_code if lot.product_code in named else "*"
                node_of[f"{lot.product_code}/{lot.lot_number}"] = f"g:{depth}:{code}"
        for i, box in enumerate(boxes):
            box.y = TOP + i * (NODE_H + ROW_GAP)
        tallest = max(tallest, len(boxes))
        nodes.extend(boxes)
    where = {n.key: n for n in nodes}
    links: dict[tuple[str, str], int] = {}
    for depth in shown[1:]:
        for lot in by_depth[depth]:
            if len(lot.path) < 2:
                continue
            parent = node_of.get(lot.path[-2])
            child = node_of.get(f"{lot.product_code}/{lot.lot_number}")
            if parent and child:
                links[(parent, child)] = links.get((parent, child), 0) + 1
    edges = []
    for (a, b), n in sorted(links.items()):
        p, c = where[a], where[b]
        x1, y1 = p.x + NODE_W, p.y + NODE_H / 2
        x2, y2 = c.x, c.y + NODE_H / 2
        mx = (x1 + x2) / 2
        edges.append(
            GraphEdge(
                d=f"M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}",
                count=n,
                weight=round(1 + min(n, 1000) ** 0.35, 2),
            )
        )
    width = 20 + len(shown) * (NODE_W + COL_GAP) - COL_GAP
    height = TOP + tallest * (NODE_H + ROW_GAP)
    return Graph(
        width=max(width, NODE_W + 20),
        height=height,
        node_w=NODE_W,
        node_h=NODE_H,
        nodes=nodes,
        edges=edges,
        columns=columns,
        hidden_levels=len(depths) - len(shown),
    )
