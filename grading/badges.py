"""Badges: shields.io endpoint JSON and a hand-written SVG twin of each.

A student repository is usually private, so shields.io cannot fetch the JSON; the README therefore
shows the SVG files by relative path, and the JSON files are there for public repositories and for
tools (the roster reads progress.json, not these). Both are made from one `Badge` value so they
always agree.

Endpoint JSON (https://shields.io/endpoint): `schemaVersion` (always 1), `label` (may be empty),
`message` (non-empty), and optionally `color`, `labelColor`, `isError`, `namedLogo`, `logoSvg`,
`logoColor`, `logoWidth`, `style`, `cacheSeconds`. We only ever write the first four.

The SVG follows the "flat" shields style. Text widths are estimated from per-character widths of
Verdana 11px (the font shields uses), which is close enough for a badge to look right.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

# shields' named colours -> the hex they render as (so the SVG twin looks like the shields badge)
COLORS = {
    "brightgreen": "#4c1", "green": "#97ca00", "yellowgreen": "#a4a61d", "yellow": "#dfb317",
    "orange": "#fe7d37", "red": "#e05d44", "blue": "#007ec6", "lightgrey": "#9f9f9f",
    "grey": "#555", "informational": "#007ec6", "success": "#4c1", "critical": "#e05d44",
}
LABEL_COLOR = "#555"


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str  # a shields named colour (see COLORS)

    def endpoint_json(self) -> dict:
        return {"schemaVersion": 1, "label": self.label, "message": self.message or "none",
                "color": self.color}

    def svg(self) -> str:
        return render_svg(self.label, self.message or "none", self.color)


def slug(text: str) -> str:
    """'Neural Network Engineer' -> 'neural-network-engineer' (file names of badges)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "badge"


# Approximate advance widths (px) of Verdana at 11px. Unlisted characters use DEFAULT_WIDTH.
_WIDTHS = {}
for chars, width in (
    ("il.,:;|!'`", 3.5), ("Ijft()[]{}r/\\ ", 4.5), ("-", 4.8), ("\"*", 5.5), ("sczxv+=<>?_^~", 6.0),
    ("abdeghknopquy0123456789$#", 7.0), ("ABCEFKLPRSTVXYZ&", 7.5), ("DGHNOQU", 8.4),
    ("mw%", 10.5), ("MW", 11.5), ("@", 11.0),
):
    for ch in chars:
        _WIDTHS[ch] = width
DEFAULT_WIDTH = 7.0


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(ch, DEFAULT_WIDTH if ord(ch) < 0x2E80 else 11.0) for ch in text)


def _hex(color: str) -> str:
    if color in COLORS:
        return COLORS[color]
    if re.fullmatch(r"#?[0-9a-fA-F]{3}|#?[0-9a-fA-F]{6}", color):
        return color if color.startswith("#") else "#" + color
    return COLORS["lightgrey"]


def render_svg(label: str, message: str, color: str) -> str:
    """A flat-style badge: grey label on the left, coloured message on the right."""
    pad = 6
    lw = round(text_width(label) + 2 * pad) if label else 0
    mw = round(text_width(message) + 2 * pad)
    width = lw + mw
    title = f"{label}: {message}" if label else message
    lx, mx = lw / 2, lw + mw / 2

    def texts(x: float, text: str) -> str:
        t = escape(text)
        return (f'<text x="{x:.1f}" y="15" fill="#010101" fill-opacity=".3">{t}</text>'
                f'<text x="{x:.1f}" y="14">{t}</text>')

    label_part = texts(lx, label) if label else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{escape(title, {chr(34): "&quot;"})}">'
        f"<title>{escape(title)}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{LABEL_COLOR}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{_hex(color)}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="11">'
        f"{label_part}{texts(mx, message)}</g></svg>\n"
    )


# --- what the badges say ---------------------------------------------------------------------------

def ratio_color(fraction: float) -> str:
    """Colour for a share of work done: red -> orange -> yellow -> green -> brightgreen."""
    if fraction >= 1.0:
        return "brightgreen"
    if fraction >= 0.75:
        return "green"
    if fraction >= 0.5:
        return "yellowgreen"
    if fraction >= 0.25:
        return "yellow"
    if fraction > 0:
        return "orange"
    return "red"


def fmt_number(value: float) -> str:
    """57.0 -> '57', 57.25 -> '57.25', 57.333 -> '57.33'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def format_metric(name: str, value) -> str:
    """A metric as a student reads it: accuracies as percentages, losses with two decimals."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if name.endswith("accuracy") or name == "readability":
        return f"{100 * value:.1f}%"
    if "loss" in name:
        return f"{value:.2f}"
    return f"{value:.3g}"


def metric_label(name: str) -> str:
    return {"test_accuracy": "test accuracy", "val_loss": "val loss",
            "readability": "readability"}.get(name, name.replace("_", " "))


def is_check(cond) -> bool:
    """A yes/no condition written as `metric >= 1` (e.g. accuracy_rises, reload_identical)."""
    return (cond.op == ">=" and cond.value == 1 and cond.metric != "readability"
            and not cond.metric.endswith(("accuracy", "loss")))


def describe_condition(cond) -> str:
    """'test accuracy >= 85.0%'; a yes/no check such as `accuracy_rises >= 1` reads 'accuracy rises'."""
    label = metric_label(cond.metric)
    if is_check(cond):
        return label
    return f"{label} {cond.op} {format_metric(cond.metric, cond.value)}"


def modules_badge(passed: int, total: int) -> Badge:
    return Badge("modules", f"{passed}/{total}", ratio_color(passed / total if total else 0))


def points_badge(points: float, max_points: float) -> Badge:
    return Badge("points", f"{fmt_number(points)}/{fmt_number(max_points)}",
                 ratio_color(points / max_points if max_points else 0))


def integrity_badge(tamper: dict) -> Badge:
    status = tamper.get("status")
    if status == "clean":
        return Badge("grader files", "unmodified", "brightgreen")
    if status == "modified":
        n = len(tamper.get("changed", [])) + len(tamper.get("missing", [])) + len(tamper.get("unexpected", []))
        return Badge("grader files", f"{n} modified", "red")
    return Badge("grader files", "no manifest", "lightgrey")


def milestone_badge(entry: dict) -> Badge:
    """The badge of one milestone from its progress.json entry (status, metrics, headline metric)."""
    label = entry.get("badge") or f"Milestone {entry.get('number')}"
    status = entry.get("status")
    headline = entry.get("headline")  # e.g. "97.1% test accuracy"
    if status == "passed":
        return Badge(label, f"passed \u00b7 {headline}" if headline else "passed", "brightgreen")
    if status == "failed":
        return Badge(label, f"not yet \u00b7 {headline}" if headline else "not yet", "orange")
    if status == "error":
        return Badge(label, "error", "red")
    if status == "not_run":
        return Badge(label, "unlocked \u00b7 not run", "blue")
    return Badge(label, "locked", "lightgrey")
