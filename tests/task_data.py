"""An offline evaluation task for tests that need real images, or why it is missing (the Debian data packages that
`make data` installs), so a module can skip with that reason instead of failing at import."""

from __future__ import annotations

from wit_builder.errors import WitError


def load_task(name: str):
    """(the task's (train, test) splits, "") or (None, the one-line reason it cannot be built here)."""
    from eval.tasks.build import TASKS

    try:
        return TASKS[name](), ""
    except WitError as err:
        return None, str(err)
