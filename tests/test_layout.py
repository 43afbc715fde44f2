"""The packages users import are ours: PyPI has unrelated `trainer`, `eval`, `pipelines` and `wit` distributions."""

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["wit_builder", "pipelines", "trainer", "eval"])
def test_package_resolves_inside_the_repo(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


def shadowed(names: list[str]) -> list[str]:
    """The names that the stdlib or site-packages also provide (what `python pipelines/x.py` would shadow)."""
    import importlib.util
    import sys

    prefix = Path(sys.prefix).resolve()
    found = []
    saved = sys.path[:]
    try:
        # only what a user's interpreter sees: the stdlib and site-packages, not the repo (pytest puts test folders
        # such as tests/wit_builder on sys.path, where web/ is a namespace package)
        sys.path[:] = [
            p
            for p in saved
            if not Path(p or ".").resolve().is_relative_to(REPO) or Path(p).resolve().is_relative_to(prefix)
        ]
        for name in names:
            if name in sys.builtin_module_names or importlib.util.find_spec(name) is not None:
                found.append(name)
    finally:
        sys.path[:] = saved
    return found


def test_pipeline_modules_do_not_shadow_libraries():
    """`python pipelines/x.py` puts pipelines/ on sys.path: no module there may share a name with an importable one."""
    names = [p.stem for p in (REPO / "pipelines").glob("*.py") if p.stem != "__init__"]
    assert "web" in names and shadowed(names) == []


def test_the_shadow_check_sees_the_stdlib_and_site_packages():
    assert shadowed(["json", "duckdb", "sys", "wit_nothing_here"]) == ["json", "duckdb", "sys"]
