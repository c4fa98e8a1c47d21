"""Terminal output for `tito`: colour only on terminals, emoji only where the console can print them.

    out = Console()                      # wraps sys.stdout
    out.line(f"{out.sym('pass')} 04_layers  12/12 tests")
    out.line(out.style("MILESTONE UNLOCKED", "bold", "green"))

Why this exists: students run `tito` in Windows consoles (cp1252), in CI logs, piped into files and
inside editors. Printing an emoji to a cp1252 stream raises UnicodeEncodeError, which would crash the
grader over a decoration. So every symbol has an ASCII twin, chosen once per stream by checking that
the stream's encoding can encode the Unicode set; any other text (a student's failure message, a
generated sample) is encoded with replacement, so nothing we print can raise.
Colour follows the usual conventions: only when the stream is a TTY, never with NO_COLOR set, and
always with FORCE_COLOR set.
"""
from __future__ import annotations

import os
import sys

# name -> (unicode, ascii)
SYMBOLS = {
    "pass": ("\u2705", "[ok]"),        # check mark button
    "fail": ("\u274c", "[x]"),         # cross mark
    "lock": ("\U0001f512", "[locked]"),
    "todo": ("\u00b7", "-"),           # middle dot
    "party": ("\U0001f389", "***"),
    "badge": ("\U0001f3c5", "(*)"),
    "rocket": ("\U0001f680", ">>"),
    "warn": ("\u26a0\ufe0f", "[!]"),
    "clock": ("\u23f1\ufe0f", "[t]"),
    "arrow": ("\u2192", "->"),
    "bar": ("\u2502", "|"),
    "rule": ("\u2500", "-"),
    "dot": ("\u2022", "*"),
    "ready": ("\u25b6\ufe0f", "[ready]"),
    "stale": ("\U0001f504", "[rerun]"),
    "trophy": ("\U0001f3c6", "[*]"),
    "tiny": ("\U0001f9ea", "[tiny]"),
}

_STYLES = {
    "bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34",
    "magenta": "35", "cyan": "36",
}


def stream_encoding(stream) -> str:
    return getattr(stream, "encoding", None) or "ascii"


def can_encode(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def wants_color(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Console:
    """A stream wrapper that never raises on text and decorates only where the stream allows it."""

    def __init__(self, stream=None, color: bool | None = None, unicode: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.encoding = stream_encoding(self.stream)
        all_symbols = "".join(u for u, _ in SYMBOLS.values())
        self.unicode = can_encode(all_symbols, self.encoding) if unicode is None else unicode
        self.color = wants_color(self.stream) if color is None else color

    # --- decorations -------------------------------------------------------------------------------
    def sym(self, name: str) -> str:
        uni, ascii_ = SYMBOLS[name]
        return uni if self.unicode else ascii_

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\033[{codes}m{text}\033[0m"

    def rule(self, width: int = 60) -> str:
        return self.sym("rule") * width

    # --- writing -----------------------------------------------------------------------------------
    def safe(self, text: str) -> str:
        """`text` with every character the stream cannot encode replaced (so writing cannot fail)."""
        try:
            text.encode(self.encoding)
            return text
        except (UnicodeEncodeError, LookupError):
            try:
                return text.encode(self.encoding, errors="replace").decode(self.encoding)
            except LookupError:
                return text.encode("ascii", errors="replace").decode("ascii")

    def write(self, text: str) -> None:
        try:
            self.stream.write(self.safe(text))
        except UnicodeEncodeError:  # a stream that lies about its encoding
            self.stream.write(text.encode("ascii", errors="replace").decode("ascii"))
        except (BrokenPipeError, ValueError):  # `tito ... | head`, or a closed stream
            pass

    def line(self, text: str = "") -> None:
        self.write(text + "\n")
        self.flush()

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError, AttributeError):
            pass


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def actions_command(kind: str, message: str, title: str | None = None) -> str:
    """A GitHub Actions workflow command (`::notice title=...::message`), with its data escaped.

    The message is our own text, but it can quote a student's test name or error message, so the
    characters that the runner interprets (%, CR, LF, and in properties also ':' and ',') are escaped.
    """
    def esc_data(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(s: str) -> str:
        return esc_data(s).replace(":", "%3A").replace(",", "%2C")

    props = f" title={esc_prop(title)}" if title else ""
    return f"::{kind}{props}::{esc_data(message)}"
