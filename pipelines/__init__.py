"""Thin entry points: the `wit` CLI and the scripts `ray job submit` runs. No logic lives here; it parses flags into
typed configs and calls `wit_builder`. Each command module exposes HELP, add_arguments(parser) and run(args)."""
