"""The one exception type the CLI turns into a single readable line: its message says what to fix."""


class WitError(Exception):
    """A user-facing error. The message must name the problem and the fix, e.g. 'no pool.parquet under X: run wit web build'."""
