"""The one kind of error a user can cause, and the one place that prints it.

Every user mistake (unknown name, missing data, value out of range, ...) raises
:class:`UserError` with one paragraph that says what was wrong and what to do. The CLI turns it
into that paragraph on stderr and exit code 2, never a traceback (`docs/reliability.md`).
"""

from __future__ import annotations

import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input: printed as one paragraph, exit code 2."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message.strip()
        self.hint = hint.strip() if hint else None
        super().__init__(self.paragraph)

    @property
    def paragraph(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


def printable(text: str) -> str:
    """``text`` safe for a terminal and a UTF-8 log: control characters (an ANSI escape, a
    newline that could forge an ``error:`` line) as ``\\xNN`` escapes, and the bytes of a
    file name that is not UTF-8 (Python keeps them as surrogates) as ``\\xNN`` too."""
    out = []
    for ch in text:
        o = ord(ch)
        if o < 32 or o == 127 or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:             # os.fsdecode's escape of an undecodable byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def shown_path(path: object) -> str:
    """A path as mixkit prints it: :func:`printable`."""
    return printable(str(path))


def print_user_error(err: UserError) -> None:
    """Print ``err`` as ``error: <paragraph>`` on stderr (no markup interpretation; control
    characters and undecodable bytes escaped, :func:`printable`)."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {_escape(printable(err.paragraph))}"
    )
    sys.stderr.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


EXIT_RUN_FAILED = 1


class RunFailed(RuntimeError):
    """A fault during a run that is not the user's input (a NaN loss, a full disk): one
    paragraph on stderr, ``"status": "failed"`` in ``summary.json``, exit code 1."""
