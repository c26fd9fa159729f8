"""`twin ask` (a question to twin_rag over HTTP or gRPC) and `twin serve` (versions on Triton)."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(no_args_is_help=True)
serve_app = typer.Typer(help="Serve registered model versions on Triton.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
out = Console()
err = Console(stderr=True)


def _settings():
    from twin.settings import load_settings

    return load_settings()


def _fail(message: str, code: int = 1) -> None:
    # messages quote what the user typed (an author, a question): never read as Rich markup
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _print_sources(sources: list[dict]) -> None:
    if not sources:
        return
    out.print("\n[bold]sources[/]")
    by_document: dict[str, list[dict]] = {}  # passages of one document print as one source
    for s in sources:
        by_document.setdefault(s["document_id"], []).append(s)
    for passages in by_document.values():
        first = passages[0]
        numbers = "".join(f"[{p['n']}]" for p in passages)
        line = f"  {numbers} {first['title']} ({first['platform']})"
        # soft wrap: a long title or URL stays one line (to copy), not cut where the console ends
        out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.print(f"      {first['url']}", markup=False, highlight=False, soft_wrap=True)


@app.command("ask")
def ask_command(
    question: str = typer.Argument(..., help="A question for the author's twin."),
    protocol: str = typer.Option("http", help="http or grpc."),
    stream: bool = typer.Option(False, "--stream", help="Print the answer as it is generated."),
    version: int | None = typer.Option(None, min=1, help="twin_llm version (default: champion)."),
    author: str | None = typer.Option(None, help="Whose writing to answer from."),
    as_json: bool = typer.Option(False, "--json", help="Print answer, sources and meta as JSON."),
) -> None:
    """Ask twin_rag on Triton; print the answer and its sources."""
    from tritonclient.utils import InferenceServerException

    from twin.rag.guardrails import redact_pii
    from twin.serving.client import ask, stream_answer

    if protocol not in ("http", "grpc"):
        _fail(f"--protocol must be http or grpc, not {protocol!r}", 2)
    if not question.strip():
        _fail("the question is empty", 2)
    settings = _settings()
    try:
        if stream:
            result, pieces = stream_answer(settings, question, author=author, version=version)
            if not result["meta"].get("grounded"):
                out.print(result["answer"], markup=False, highlight=False)
            line = ""
            for piece in pieces:  # redacted line by line, as the non-streaming answer is
                line += piece
                *done, line = line.split("\n")
                for text in done:
                    out.print(redact_pii(text)[0], markup=False, highlight=False)
            if line:
                out.print(redact_pii(line)[0], markup=False, highlight=False)
        else:
            result = ask(settings, question, author=author, version=version, protocol=protocol)
            if as_json:
                out.print_json(json.dumps(result))
                return
            out.print(result["answer"], markup=False, highlight=False)
    except InferenceServerException as exc:
        _fail(f"twin_rag refused the question: {exc.message()}")
    except (ConnectionError, OSError) as exc:
        _fail(f"Triton cannot be reached ({exc}): run `twin stack up` and `twin serve up`")
    _print_sources(result["sources"])
    meta = result["meta"]
    if meta.get("grounded"):
        version = meta.get("model_version")
        served_by = (
            f"twin_llm v{version}"
            if meta.get("backend", "python") == "python"
            else f"{meta.get('llm_model')} (version {version})"
        )
        out.print(
            f"\n[dim]{served_by} over {protocol}{' (streamed over gRPC)' if stream else ''}[/]",
            highlight=False,
        )


@serve_app.command("up")
def serve_up(
    version: int | None = typer.Option(None, min=1, help="Registered version (default: champion)."),
    base_model: str | None = typer.Option(
        None, help="When no version is registered yet: register this base model (smollm2-135m)."
    ),
) -> None:
    """Materialise a registered version, load twin_llm, its streaming twin and twin_rag."""
    from twin.serving.bootstrap import serve_version

    try:
        served = serve_version(_settings(), version, base_model=base_model)
    except Exception as exc:
        _fail(str(exc))
    out.print(f"serving twin_llm v{served} (default of twin_rag), twin_llm_stream, twin_rag")


@serve_app.command("status")
def serve_status() -> None:
    """Served versions, the champion and shadow of twin_rag, and each model's readiness."""
    from twin.serving.backend_names import llm_tensors
    from twin.serving.client import http_client
    from twin.serving.repository import read_routing, served_versions

    settings = _settings()
    routing = read_routing(settings)
    out.print(f"served twin_llm versions: {served_versions(settings) or 'none'}", markup=False)
    out.print(f"routing: {json.dumps(routing)}", markup=False, highlight=False)
    names = llm_tensors(settings.serving_llm_backend)
    if names.versioned:
        models = [names.model, names.stream_model or names.model]
    else:
        models = [names.model_name(v) for v in served_versions(settings)]
    out.print(f"LLM backend: {names.backend}", markup=False)
    client = http_client(settings)
    try:
        for model in (*models, "twin_rag"):
            out.print(f"  {model}: {'READY' if client.is_model_ready(model) else 'not ready'}")
    except Exception as exc:
        _fail(f"Triton cannot be reached: {exc}")
    finally:
        client.close()


def main() -> None:  # pragma: no cover
    sys.exit(app())


@serve_app.command("trtllm")
def serve_trtllm(
    version: int = typer.Option(..., min=1, help="Registered version to build for."),
    out: str | None = typer.Option(
        None, help="Output folder (default: the serving model repository, beside twin_rag)."
    ),
    max_batch_size: int = typer.Option(64, min=1, max=2048, help="Engine and Triton batch size."),
    stand_in: bool = typer.Option(
        False,
        "--stand-in",
        help="No GPU: write the version's BLS as a CPU stand-in (same inputs and outputs, "
        "transformers on the version's weights) into the serving repository.",
    ),
) -> None:
    """Generate a version's TensorRT-LLM pipeline (the engine builds on a GPU host), or its CPU
    stand-in. Serve it with SERVING_LLM_BACKEND=tensorrtllm."""
    from pathlib import Path

    from twin.serving.trtllm import build_trtllm_repository, install_standin

    try:
        if stand_in:
            if out:
                _fail("--stand-in writes into the serving model repository: leave --out out")
            folder = install_standin(_settings(), version)
            serve = f"SERVING_LLM_BACKEND=tensorrtllm twin serve up --version {version}"
            typer.echo(f"{folder}\nserve it: {serve}")
            return
        folder = build_trtllm_repository(
            _settings(), version, Path(out) if out else None, max_batch_size=max_batch_size
        )
    except Exception as exc:
        _fail(str(exc))
    typer.echo(f"{folder}\nbuild the engine on a GPU host: see {folder / 'build_engine.sh'}")
