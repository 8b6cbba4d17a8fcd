"""The one exception type whose message is shown to the user as a single line (no traceback)."""


class UserError(Exception):
    """Something the user can fix: a bad flag, config value, key file or checkpoint. The message says what
    happened and what to do, in one line."""
