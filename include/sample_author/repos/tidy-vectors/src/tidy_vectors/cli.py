"""The tidy-vectors command: `stale` reports, `refresh` re-embeds."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for the two subcommands."""
    parser = argparse.ArgumentParser(prog="tidy-vectors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("stale", "refresh"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--dsn", required=True, help="Postgres connection string")
        cmd.add_argument("--model", required=True, help="embedding model name@revision")
    sub.choices["refresh"].add_argument("--batch-size", type=int, default=256)
    sub.choices["refresh"].add_argument("--into", default="vectors.chunks")
    sub.choices["refresh"].add_argument("--allow-mass-delete", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the chosen command; returns the exit status."""
    args = build_parser().parse_args(argv)
    print(f"{args.command}: model={args.model}")
    return 0
