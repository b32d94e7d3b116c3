"""Server-rendered SVG charts for the console dashboard: no JavaScript, no chart library.

One shape covers every chart on the dashboard: columns along x (days, hours, queues), each a
stack of named series, with the column's total above it and a legend. Every piece of text goes
through `format_html`, so labels coming from data can't inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

HEIGHT, PAD_TOP, PAD_LEFT, PAD_BOTTOM = 160, 22, 48, 40

# Colour-blind-safe palette (Okabe-Ito), in series order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000")


@dataclass
class Series:
    name: str
    values: list[float | None]
    color: str = ""


def _fmt(value: float, unit: str) -> str:
    if value == int(value):
        return f"{int(value)}{unit}"
    return f"{value:.3g}{unit}"


def columns(
    title: str,
    labels: list[str],
    series: list[Series],
    *,
    unit: str = "",
    column_width: int = 28,
    gap: int = 10,
    label_every: int = 1,
    empty: str = "Nothing yet.",
) -> SafeString:
    """Stacked columns: one per label, one segment per series (in order, bottom up)."""
    for i, s in enumerate(series):
        s.color = s.color or PALETTE[i % len(PALETTE)]
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = max(totals + [0])
    heading = format_html('<h3 class="chart-title">{}</h3>', title)
    if not labels or top <= 0:
        return format_html('{}<p class="chart-empty">{}</p>', heading, empty)
    width = PAD_LEFT + len(labels) * (column_width + gap) + gap
    parts: list[str] = [
        # The y axis: zero and the maximum.
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"></line>'
            '<text x="{}" y="{}" text-anchor="end" class="tick">{}</text>'
            '<text x="{}" y="{}" text-anchor="end" class="tick">0</text>',
            PAD_LEFT,
            PAD_TOP + HEIGHT,
            width,
            PAD_TOP + HEIGHT,
            PAD_LEFT - 4,
            PAD_TOP + 4,
            _fmt(top, unit),
            PAD_LEFT - 4,
            PAD_TOP + HEIGHT,
        )
    ]
    for i, label in enumerate(labels):
        x = PAD_LEFT + gap + i * (column_width + gap)
        base = PAD_TOP + HEIGHT
        tooltip = [f"{label}"]
        for s in series:
            value = s.values[i] or 0
            h = HEIGHT * value / top
            if h > 0:
                base -= h
                parts.append(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                        "<title>{}: {}</title></rect>",
                        x,
                        f"{base:.1f}",
                        column_width,
                        f"{h:.1f}",
                        s.color,
                        s.name,
                        _fmt(value, unit),
                    )
                )
            tooltip.append(f"{s.name} {_fmt(value, unit)}")
        if totals[i]:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" class="value">{}</text>',
                    x + column_width / 2,
                    f"{base - 3:.1f}",
                    _fmt(totals[i], unit),
                )
            )
        if i % label_every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>',
                    x + column_width / 2,
                    PAD_TOP + HEIGHT + 14,
                    label,
                )
            )
    legend = ""
    if len(series) > 1:
        legend = format_html(
            '<ul class="legend">{}</ul>',
            format_html_join(
                "",
                '<li><span class="swatch" style="background:{}"></span>{}</li>',
                ((s.color, s.name) for s in series),
            ),
        )
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{}" height="{}" '
        'role="img" aria-label="{}">{}</svg>',
        width,
        PAD_TOP + HEIGHT + PAD_BOTTOM - 16,
        title,
        mark_safe("".join(parts)),  # noqa: S308 - every piece went through format_html
    )
    return format_html("{}{}{}", heading, svg, legend)
