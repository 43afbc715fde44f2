"""The front door: every subcommand in the table loads, has help, and errors are one line without a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli

ROOT = Path(__file__).resolve().parents[2]


def wit(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, **kw)


def test_every_command_has_help_and_a_runner():
    parser = cli.build_parser()
    for name, module_name in cli.COMMANDS.items():
        module = __import__(module_name, fromlist=["run"])
        assert module.HELP and callable(module.add_arguments) and callable(module.run), name
    assert "usage: wit" in parser.format_help()


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_subcommand_help_exits_zero(name):
    done = wit(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"wit {name}" in done.stdout


def test_demo_help_lists_every_step_it_runs():
    from pipelines import demo

    listed = [
        line.split()[1] for line in wit("demo", "--help").stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()
    ]
    assert listed == ["web", "serve", "queries", "build", "train", "eval", "overlap"] and len(listed) == demo.STEPS


def test_unknown_command_is_an_argparse_error():
    done = wit("frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_wit_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope"
    done = wit("sql", str(missing), "SELECT 1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"wit: error: {missing} does not exist: give a folder written by a wit command, or a .parquet file"
    ]
    debug = wit("sql", str(missing), "SELECT 1", "--debug")
    assert "Traceback" in debug.stderr and debug.returncode == 2


def test_ray_env_prints_the_shared_settings():
    done = wit("ray", "env")
    assert done.returncode == 0
    assert "export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" in done.stdout
    assert "export RAY_AUTH_MODE=disabled" in done.stdout


SCRIPTS = sorted(p.name for p in (ROOT / "pipelines").glob("*.py") if "run_script(sys.modules" in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_pipeline_scripts_run_from_anywhere(script, tmp_path):
    """What `ray job submit -- python pipelines/<script>` runs: the script itself, the same flags as its subcommand,
    even from another folder (a script's own folder comes first on sys.path and must not shadow the packages)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / script), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "--debug" in done.stdout
