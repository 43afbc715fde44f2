"""The front door: every subcommand in the table loads, has help, and errors are one line without a traceback."""

import subprocess
import sys

import pytest

from pipelines import cli


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
