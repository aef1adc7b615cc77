"""User errors: bad input that the user can fix. The CLI prints one line and exits with 2."""

__all__ = ["UserError"]


class UserError(Exception):
    """A bad input; the message names the file, the key or column, what was found and expected."""
