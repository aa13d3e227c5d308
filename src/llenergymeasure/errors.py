"""Errors a user can cause: the CLI prints them as one message and exits 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, missing image, Docker down, no GPU.

    `message` names what is wrong (with file:line and dotted path where there is one);
    `hint` names the fix.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"
