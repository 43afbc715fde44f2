"""The packages users import are ours: PyPI has unrelated `trainer`, `eval`, `pipelines` and `wit` distributions."""

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["wit_builder", "pipelines", "trainer", "eval"])
def test_package_resolves_inside_the_repo(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


def test_pipeline_modules_do_not_shadow_libraries():
    """`python pipelines/x.py` puts pipelines/ on sys.path: no module there may share a name with an importable one."""
    import importlib.util
    import sys

    shadowed = []
    for path in (REPO / "pipelines").glob("*.py"):
        name = path.stem
        if name == "__init__":
            continue
        saved = sys.path[:]
        try:
            sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "pipelines")]
            if name in sys.builtin_module_names or importlib.util.find_spec(name) is not None:
                shadowed.append(name)
        finally:
            sys.path[:] = saved
    assert shadowed == []
