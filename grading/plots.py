"""SVG line plots of a milestone's history, written by hand (no plotting dependency).

    svg = history_svg(result["history"], title="Milestone 3: Full Training",
                      thresholds={"test_accuracy": 0.60})

The history is a list of dicts, one per epoch (or per batch for the inference milestones), e.g.
`[{"epoch": 1, "train_loss": 1.6, "test_accuracy": 0.45}, ...]`. Every numeric key (other than the
x key) whose name mentions loss, accuracy, perplexity or readability, or that has a victory
threshold, becomes a curve; bookkeeping numbers such as seconds or images/s are left out. Curves
whose name contains "loss" go in the left panel, the others (accuracies, scores) in the right panel,
because they live on different scales. A victory threshold for a plotted metric is drawn as a
dashed horizontal line, so the student sees how far the curve is from it.
"""
from __future__ import annotations

import math
from xml.sax.saxutils import escape

X_KEYS = ("epoch", "step", "batch", "images")
CURVE_WORDS = ("loss", "acc", "perplexity", "readability")  # keys plotted (plus any thresholded metric)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
PANEL_W, PANEL_H = 420, 280
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 56, 16, 34, 64


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pick_x_key(history: list[dict]) -> str | None:
    """The first of epoch/step/batch/images present in every entry with more than one value."""
    for key in X_KEYS:
        values = [h.get(key) for h in history]
        if values and all(_finite(v) for v in values) and len(set(values)) > 1:
            return key
    return None


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi] (1, 2, 5 times a power of ten)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _panel(x0: float, series: dict[str, list[tuple[float, float]]], title: str, xlabel: str,
           thresholds: dict[str, float], colours: dict[str, str]) -> list[str]:
    """SVG elements of one panel whose top-left corner is at (x0, 0)."""
    out = [f'<text x="{x0 + PANEL_W / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{escape(title)}</text>']
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts] + [v for k, v in thresholds.items() if k in series]
    if not xs:
        out.append(f'<text x="{x0 + PANEL_W / 2:.1f}" y="{PANEL_H / 2:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#666">no data</text>')
        return out
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    pad = (yhi - ylo) * 0.08 or max(abs(yhi) * 0.1, 0.05)
    ylo, yhi = ylo - pad, yhi + pad
    left, right = x0 + MARGIN_L, x0 + PANEL_W - MARGIN_R
    top, bottom = MARGIN_T, PANEL_H - MARGIN_B

    def sx(x):
        return left + (x - xlo) / (xhi - xlo) * (right - left)

    def sy(y):
        return bottom - (y - ylo) / (yhi - ylo) * (bottom - top)

    out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
               'fill="none" stroke="#444"/>')
    for t in _nice_ticks(ylo, yhi):
        y = sy(t)
        out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>')
    for t in _nice_ticks(xlo, xhi, 6):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{bottom:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" font-size="11">{_fmt(t)}</text>')
    out.append(f'<text x="{(left + right) / 2:.1f}" y="{bottom + 32:.1f}" text-anchor="middle" '
               f'font-size="12">{escape(xlabel)}</text>')
    legend_y = bottom + 50
    legend_x = left
    for name, pts in series.items():
        colour = colours[name]
        if len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts if len(pts) <= 60 else pts[-1:]:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        if name in thresholds:
            y = sy(thresholds[name])
            out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{colour}" '
                       'stroke-dasharray="6,4"/>')
            out.append(f'<text x="{right - 4:.1f}" y="{y - 4:.1f}" text-anchor="end" font-size="10" '
                       f'fill="{colour}">target {_fmt(thresholds[name])}</text>')
        if legend_x > left and legend_x + 14 + 7 * len(name) > right:  # next legend row
            legend_x, legend_y = left, legend_y + 14
        out.append(f'<rect x="{legend_x:.1f}" y="{legend_y - 8:.1f}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14:.1f}" y="{legend_y + 1:.1f}" font-size="11">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    return out


def history_svg(history: list[dict], title: str = "", thresholds: dict[str, float] | None = None) -> str:
    """An SVG document with the curves of `history` (see the module docstring)."""
    history = [h for h in (history or []) if isinstance(h, dict)]
    thresholds = {k: float(v) for k, v in (thresholds or {}).items() if _finite(v)}
    x_key = pick_x_key(history)
    skip = set(X_KEYS)
    names: list[str] = []
    for h in history:
        for k, v in h.items():
            wanted = k in thresholds or any(word in k.lower() for word in CURVE_WORDS)
            if wanted and k not in skip and k not in names and _finite(v):
                names.append(k)
    series = {}
    for name in names:
        pts = [(float(h[x_key]) if x_key else float(i), float(h[name]))
               for i, h in enumerate(history) if _finite(h.get(name)) and (x_key is None or _finite(h.get(x_key)))]
        if pts:
            series[name] = pts
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    loss = {k: v for k, v in series.items() if "loss" in k}
    other = {k: v for k, v in series.items() if "loss" not in k}
    panels = [(p, t) for p, t in ((loss, "loss"), (other, "accuracy and other metrics")) if p] or [({}, "history")]
    width = PANEL_W * len(panels)
    height = PANEL_H + 24
    body = []
    for i, (panel, panel_title) in enumerate(panels):
        body += _panel(i * PANEL_W, panel, panel_title, x_key or "entry", thresholds, colours)
    header = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">')
    caption = (f'<text x="8" y="{height - 6}" font-size="12" fill="#333">{escape(title)}</text>' if title else "")
    return "\n".join([header, '<rect width="100%" height="100%" fill="white"/>', *body, caption, "</svg>"]) + "\n"
