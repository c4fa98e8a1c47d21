"""Solution blocks: find them, check them, and replace them with stubs.

What a student writes sits between two marker lines inside a function or method body:

    def relu(x):
        <validation the student is given>
        # BEGIN SOLUTION implement the ReLU forward pass     <- optional hint after the marker
        ...the reference code...
        # END SOLUTION

`tito release` turns each block into one line at the block's indentation,

        raise NotImplementedError("03_activations: implement the ReLU forward pass, see assignments/03_activations/README.md")

and, for courses that hand out earlier answers, can keep a block's code (only the marker lines go).

Rules checked here (a broken marker must fail the release loudly, never leak a solution silently):
- markers are whole comment lines spelled exactly `# BEGIN SOLUTION` / `# END SOLUTION`; a line that
  merely looks like one (`#BEGIN SOLUTION`, `# begin solution`) is an error;
- blocks do not nest, every BEGIN has its END at the same indentation, and the code inside is indented
  at least as deep as the markers;
- a block lies inside a function body (module-level code must import without the student's code);
- the stubbed file still parses.
"""
from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?:[ \t]+(?P<hint>\S.*?))?[ \t]*$")
_END = re.compile(r"^(?P<indent>[ \t]*)# END SOLUTION[ \t]*$")
# Anything resembling a marker; used to reject near-misses that would otherwise ship a solution.
_LOOKS_LIKE_MARKER = re.compile(r"#\s*(BEGIN|END)[\s_-]*SOLUTION", re.IGNORECASE)


class SolutionMarkerError(ValueError):
    """A file's solution markers are malformed; the message names the file and line."""


@dataclass(frozen=True)
class SolutionBlock:
    path: str          # file the block is in (for messages)
    begin: int         # 1-based line number of the BEGIN marker
    end: int           # 1-based line number of the END marker
    indent: str        # the markers' indentation, which is the stub's indentation
    hint: str | None   # text after `# BEGIN SOLUTION`, if any
    qualname: str      # enclosing function, e.g. "Tensor.matmul" or "relu"
    body: str          # the lines between the markers (the secret), joined with "\n"

    def message(self, module_id: str) -> str:
        """The text of the stub's NotImplementedError."""
        what = self.hint or f"implement {self.qualname}"
        return f"{module_id}: {what}, see assignments/{module_id}/README.md"


def _comment_lines(text: str) -> set[int] | None:
    """Line numbers holding only a comment (markers inside strings or after code are not markers)."""
    lines = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and not tok.line[:tok.start[1]].strip():
                lines.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None  # not Python we can tokenize: treat every line as a possible marker
    return lines


def marker_lines(text: str) -> list[int]:
    """1-based numbers of comment lines that are (or look like) solution markers."""
    comments = _comment_lines(text)
    return [i for i, line in enumerate(text.splitlines(), 1)
            if (comments is None or i in comments) and _LOOKS_LIKE_MARKER.search(line)]


def _scan(text: str, path: str) -> list[tuple[int, int, str, str | None]]:
    """(begin, end, indent, hint) of every block, checking the marker rules that need no parsing."""
    blocks = []
    open_block: tuple[int, str, str | None] | None = None
    comments = _comment_lines(text)
    for number, line in enumerate(text.splitlines(), 1):
        is_comment = comments is None or number in comments
        begin = _BEGIN.match(line) if is_comment else None
        end = _END.match(line) if is_comment else None
        if begin:
            if open_block:
                raise SolutionMarkerError(
                    f"{path}:{number}: '# BEGIN SOLUTION' inside the block opened at line {open_block[0]}; "
                    "blocks cannot nest (close the first one with '# END SOLUTION')")
            open_block = (number, begin["indent"], begin["hint"])
        elif end:
            if not open_block:
                raise SolutionMarkerError(f"{path}:{number}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it")
            if end["indent"] != open_block[1]:
                raise SolutionMarkerError(
                    f"{path}:{number}: '# END SOLUTION' is indented {len(end['indent'])} columns but its "
                    f"'# BEGIN SOLUTION' (line {open_block[0]}) is indented {len(open_block[1])}; they must match")
            blocks.append((open_block[0], number, open_block[1], open_block[2]))
            open_block = None
        elif is_comment and _LOOKS_LIKE_MARKER.search(line):
            raise SolutionMarkerError(
                f"{path}:{number}: {line.strip()!r} looks like a solution marker but is not spelled exactly "
                "'# BEGIN SOLUTION [hint]' or '# END SOLUTION' on a line of its own")
        elif open_block and line.strip():
            if not line.startswith(open_block[1]) or len(line) - len(line.lstrip()) < len(open_block[1]):
                raise SolutionMarkerError(
                    f"{path}:{number}: code inside the solution block opened at line {open_block[0]} is indented "
                    "less than its markers; put the markers at the function body's indentation")
    if open_block:
        raise SolutionMarkerError(f"{path}:{open_block[0]}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
    return blocks


def _qualnames(tree: ast.AST) -> dict:
    """{function node: qualified name} for every function, named the way Python names them."""
    names = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names[child] = prefix + child.name
                visit(child, names[child] + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def find_blocks(text: str, path: str = "<string>") -> list[SolutionBlock]:
    """Every solution block of a Python source, validated (raises SolutionMarkerError)."""
    spans = _scan(text, path)
    if not spans:
        return []
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise SolutionMarkerError(f"{path}:{exc.lineno}: the reference solution does not parse: {exc.msg}") from None
    qualnames = _qualnames(tree)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]

    def enclosing_function(node):
        while node in parent:
            node = parent[node]
            if node in qualnames:
                return node
        return None

    lines = text.splitlines()
    blocks = []
    for begin, end, indent, hint in spans:
        inside = [s for s in statements if begin < s.lineno < end]
        if not inside:
            raise SolutionMarkerError(f"{path}:{begin}: the solution block has no code; remove its markers")
        functions = {enclosing_function(s) for s in inside}
        if None in functions:
            raise SolutionMarkerError(
                f"{path}:{begin}: solution block outside a function body; blocks may only sit inside functions "
                "or methods so the file still imports when they are replaced by stubs")
        # The innermost function holding the block's outermost statements names the stub.
        outermost = min(inside, key=lambda s: (s.col_offset, s.lineno))
        function = enclosing_function(outermost)
        if any(s.end_lineno >= end for s in inside):
            raise SolutionMarkerError(f"{path}:{begin}: a statement of the solution block runs past its END marker")
        blocks.append(SolutionBlock(path, begin, end, indent, hint, qualnames[function],
                                    "\n".join(lines[begin:end - 1])))
    return blocks


def python_string(text: str) -> str:
    """A double-quoted Python string literal for `text` (JSON's escapes are all valid in Python)."""
    return json.dumps(text, ensure_ascii=False)


def transform(text: str, module_id: str, keep, path: str = "<string>") -> str:
    """The source with every block stubbed (keep=False) or with only its marker lines removed (keep=True).

    `keep` may also be a set of block indexes (0-based, in file order): those blocks keep their code and
    the others are stubbed - a module partly done, as `tito classroom cost` replays a student's pushes.
    The result is checked to parse; a file without blocks comes back unchanged.
    """
    blocks = find_blocks(text, path)
    if not blocks:
        return text
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    out: list[str] = []
    cursor = 0  # index into `lines`
    for index, block in enumerate(blocks):
        out.extend(lines[cursor:block.begin - 1])
        if keep is True or (keep is not False and index in keep):
            out.extend(lines[block.begin:block.end - 1])
        else:
            out.append(f"{block.indent}raise NotImplementedError({python_string(block.message(module_id))}){newline}")
        cursor = block.end
    out.extend(lines[cursor:])
    result = "".join(out)
    try:
        ast.parse(result, filename=path)
    except SyntaxError as exc:
        what = "with solutions kept" if keep is True else "after replacing its solution blocks with stubs"
        raise SolutionMarkerError(
            f"{path}:{exc.lineno}: the file no longer parses {what} ({exc.msg}); each block must be a complete "
            "sequence of statements at the function body's indentation") from None
    return result


def stub(text: str, module_id: str, path: str = "<string>") -> str:
    """Replace every solution block by `raise NotImplementedError(...)`."""
    return transform(text, module_id, keep=False, path=path)


def keep_solutions(text: str, path: str = "<string>") -> str:
    """Keep every block's code, dropping only the marker lines."""
    return transform(text, "", keep=True, path=path)
