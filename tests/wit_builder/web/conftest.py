"""A small real demo web (40 images per collection, built from the installed Debian data) shared by the web tests."""

import pytest

from wit_builder.web.build import WebConfig, build_web

SMALL = 40


@pytest.fixture(scope="session")
def small_web(tmp_path_factory):
    out = tmp_path_factory.mktemp("web")
    summary = build_web(out, WebConfig(limit=SMALL), progress=False)
    return out, summary
