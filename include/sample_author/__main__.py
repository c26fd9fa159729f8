"""`python -m sample_author build DIR [--extra-pages N | --second]` or `python -m sample_author
serve ...` (a built site is served as it is: `--second` builds the second author's)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sample_author.server import main as serve_main
from sample_author.site import build_site


def main(argv: list[str] | None = None) -> int:
    """Build the site into a directory, or serve it (arguments as `sample_author.server`)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        return serve_main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m sample_author")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="render the site into DIR")
    build.add_argument("out_dir", type=Path)
    build.add_argument("--extra-pages", type=int, default=0)
    build.add_argument(
        "--second", action="store_true", help="the second author, Ines Okafor, instead of Ada"
    )
    sub.add_parser("serve", help="serve a site (see --help of sample_author.server)")
    parsed = parser.parse_args(args)
    if parsed.second:
        from sample_author.second import build_second_site

        manifest = build_second_site(parsed.out_dir)
    else:
        manifest = build_site(parsed.out_dir, extra_pages=parsed.extra_pages)
    print(
        f"built {manifest.total_documents} documents, {manifest.total_words} words, "
        f"{len(manifest.repos)} git repositories into {manifest.site_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
