"""`wit`, the front door. Each subcommand is a module with HELP, add_arguments(parser) and run(args); pipeline scripts
(`python pipelines/build_wit.py ...`) reuse the very same functions through `run_script`, so flags never drift."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from types import ModuleType

from wit_builder.errors import WitError

# subcommand -> module. Order is the order of `wit --help`: the data flow, then tools.
COMMANDS: dict[str, str] = {
    "demo": "pipelines.demo",
    "web": "pipelines.web",
    "queries": "pipelines.build_queries",
    "build": "pipelines.build_wit",
    "train": "pipelines.train",
    "eval": "pipelines.evaluate",
    "overlap": "pipelines.overlap",
    "study": "pipelines.study",
    "dedup": "pipelines.dedup",
    "export": "pipelines.export",
    "tokenizer": "pipelines.tokenizer",
    "sql": "pipelines.sql",
    "ray": "pipelines.ray_cluster",
}


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors"
    )
    return common


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, import just that subcommand's module (a fast start, and one broken module
    cannot take the others down). Without it, every module is imported for `wit --help`."""
    parser = argparse.ArgumentParser(
        prog="wit",
        description="Rebuild CLIP as in the paper: the query list, curation of a candidate pool and its download "
        "into WebDataset shards, training on them, evaluation (zero-shot, retrieval, linear probes), the "
        "train/eval overlap report and within-corpus deduplication, the paper's studies, and SQL over every table.",
        parents=[_common()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        child = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            parents=[_common()],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(_module=module)
    return parser


def invoke(run, args: argparse.Namespace) -> int:
    """Run a command; turn failures into one line on stderr and a non-zero exit (the traceback only with --debug)."""
    debug = getattr(args, "debug", False) or os.environ.get("WIT_DEBUG") == "1"
    try:
        code = run(args)
        return int(code or 0)
    except BrokenPipeError:  # `wit ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("wit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the front door must never dump a traceback on a user by default
        if debug:
            traceback.print_exc()
        wit_error = find_wit_error(err)
        if wit_error is not None:
            print(f"wit: error: {wit_error}", file=sys.stderr)
            return 2
        print(f"wit: error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


# Ray Data appends its retry advice to a task's exception message; it says nothing about our errors.
_RAY_RETRY_NOTE = re.compile(r"\nFailed to .+ after \d+/\d+ attempts \(total backoff.*\Z", re.DOTALL)


def find_wit_error(err: BaseException) -> WitError | None:
    """The WitError behind `err`: itself, or the one a Ray task raised (Ray wraps it in RayTaskError, and Ray Data
    wraps that again and appends its retry advice), found through `cause` and the exception chain."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        cause = getattr(err, "cause", None)  # RayTaskError keeps the task's own exception here
        if isinstance(cause, WitError):
            return find_wit_error(cause)
        if type(err) is WitError:  # not Ray's RayTaskError(WitError) copy, whose text is a traceback
            return WitError(_RAY_RETRY_NOTE.sub("", str(err)))
        err = err.__cause__ or err.__context__ or (cause if isinstance(cause, BaseException) else None)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    return invoke(args._module.run, args)


def run_script(module: ModuleType, argv: list[str] | None = None) -> int:
    """Entry point for `python pipelines/<script>.py`: the same flags and the same run() as its subcommand."""
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]),
        description=module.__doc__,
        parents=[_common()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return invoke(module.run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
