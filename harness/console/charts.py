"""Charts drawn on the server as inline SVG (no chart library, no script): only numbers and
escaped names go into the markup, and presentation attributes rather than inline styles (the
Content-Security-Policy forbids those)."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM = 720, 120, 36, 18
_LABEL = 'font-size="10" fill="#555"'


def throughput_svg(name: str, counts: list[int], start: int, bucket_seconds: int) -> Markup:
    """Bars per bucket, oldest on the left; a title on each bar for hovering."""
    peak = max(counts, default=0)
    scale = max(peak, 1)
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM
    bar_w = plot_w / max(len(counts), 1)
    label = escape(name)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' role="img" aria-label="{label}: items delivered per 10 minutes, last 24 hours"'
        f' data-total="{sum(counts)}">',
        f'<line x1="{PAD_LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#888"/>',
        f'<text x="{PAD_LEFT - 4}" y="10" {_LABEL} text-anchor="end">{peak}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{plot_h}" {_LABEL} text-anchor="end">0</text>',
    ]
    for index, count in enumerate(counts):
        if not count:
            continue
        h = plot_h * count / scale
        x = PAD_LEFT + index * bar_w
        at = datetime.fromtimestamp(start + index * bucket_seconds, UTC)
        parts.append(
            f'<rect x="{x:.1f}" y="{plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}"'
            f' height="{h:.1f}" fill="#2f6f9f"><title>{at:%H:%M} UTC: {count}</title></rect>'
        )
    for hours_ago in (24, 18, 12, 6, 0):
        x = PAD_LEFT + plot_w * (24 - hours_ago) / 24
        text = "now" if hours_ago == 0 else f"-{hours_ago}h"
        anchor = "end" if hours_ago == 0 else "start" if hours_ago == 24 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 4}" text-anchor="{anchor}" font-size="10"'
            f' fill="#555">{text}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
