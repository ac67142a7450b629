"""Where a skipped log line was and how it began, for the pipeline's warnings about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["EXCERPT_CHARS", "LinePlace", "printable_excerpt"]


#: Characters of a line shown in a warning about it.
EXCERPT_CHARS = 100


def printable_excerpt(raw: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of a log line for a warning, repr-style: in single quotes, bytes that are
    not UTF-8 as `\\xff`, control and other unprintable characters escaped (`\\x01`,
    `\\t`, `\\u200b`), a backslash doubled; printable text (Korean included) as it is.
    Longer lines are cut after `limit` characters, saying how long they are."""
    text = raw[:limit * 4].decode("utf-8", "surrogateescape")  # at most 4 bytes a character
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    more = f"... ({len(raw)} bytes)" if len(text) > limit or len(raw) > limit * 4 else ""
    return "'" + "".join(out) + "'" + more


@dataclass(slots=True)
class LinePlace:
    """Where one batch's lines are, for warnings about them: the file's path and each
    line's byte offset in it (worked out from the batch's end on first use: a batch's
    lines are consecutive, each followed by its newline)."""

    lines: Sequence[bytes]
    path: str
    end_offset: int | None
    _starts: list[int] | None = None

    def of(self, index: int) -> str:
        """`at byte <offset> of <path>` for the line at `index`."""
        if self.end_offset is None:
            return f"in {self.path}"
        if self._starts is None:
            first = self.end_offset - sum(map(len, self.lines)) - len(self.lines)
            self._starts = list(accumulate((len(line) + 1 for line in self.lines),
                                           initial=first))
        return f"at byte {self._starts[index]} of {self.path}"
