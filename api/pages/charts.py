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
    """An axis label: the date, with the time when the chart spans less than three days."""
    return t.strftime("%m-%d %H:%M") if span_seconds < 3 * 86400 else t.strftime("%Y-%m-%d")


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
    """Bars for ``stages`` ((key, count), the first being everyone), each as wide as its share of the first."""
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
