"""`twin sample ...`: the bundled sample author's commands, added to the `twin` command through
the `twin.cli` entry point (the platform never imports the demo author)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The bundled sample author.", no_args_is_help=True)


@app.command("serve")
def sample_serve(
    site_dir: Path | None = typer.Option(None, help="Built site (built here when empty)."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0: a free one)."),
    latency_ms: float = typer.Option(0, help="Latency added to every response."),
    burst_limit: int = typer.Option(50, help="Requests per second per client before 429 (0: off)."),
    extra_pages: int = typer.Option(0, help="Synthetic blog articles to add (benchmarks)."),
    record_links: bool = typer.Option(
        False,
        "--record-links",
        help="Record this site's links as the sample author's in the configured Mongo "
        "(then `twin crawl` without links crawls it; it also needs CRAWL_ALLOW_PRIVATE_HOSTS).",
    ),
) -> None:
    """Serve the sample author's site on loopback, with realistic HTTP behaviour, until Ctrl+C."""
    from sample_author.content import AUTHOR
    from sample_author.links import sample_links
    from sample_author.server import serve
    from twin.stack.process import free_port

    port = port or free_port()
    if record_links:
        from twin.crawl.run import record_author_links
        from twin.settings import load_settings

        url = f"http://127.0.0.1:{port}"
        try:
            record_author_links(AUTHOR.name, sample_links(url), load_settings())
            typer.echo(f"sample author {AUTHOR.name!r}: links of {url} recorded", err=True)
        except Exception as err:  # the site still serves; the user can pass links instead
            typer.echo(f"sample author's links not recorded: {err}", err=True)
    serve(
        site_dir,
        port,
        latency_ms,
        burst_limit=burst_limit or None,
        extra_pages=extra_pages,
        quiet=True,
    )
