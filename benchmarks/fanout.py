"""The feature stage fanned out: one worker vs several over a synthetic corpus.

The sample author's documents and repositories are repeated under new document ids until there
are `--documents` of them (10,000 by default; `--scale` multiplies it), loaded into a scratch
database's `marts.documents` on the stack's warehouse (`WAREHOUSE_DSN`), and indexed from empty
the way `twin_features` does it: `plan_pieces`, then the pieces shared by W worker processes
(each takes the next piece, as Celery workers take the next mapped task instance), then
`finish_sync`. Each worker process loads its own embedding model and gets an equal share of the
cores for torch. Every configuration starts from an empty index in its own scratch database and
must end with the same chunks.

On this 2-core machine expect little speed-up from a second worker: the point is that the work
is shared (each worker's piece count is printed) and the result is the same.

    set -a; . .twin/stack.env; set +a
    python benchmarks/fanout.py [--documents 10000] [--workers 1,2] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path

import psycopg

from twin.features.pipeline import finish_sync, plan_pieces, sync_piece
from twin.settings import load_settings
from twin.store.warehouse import scratch_database

PIECE_DOCUMENTS = 256  # as twin_features plans them


def _embed_load():
    """benchmarks/embed_load.py (its corpus builder), loaded by path: worker processes start
    without benchmarks/ on sys.path, which embed_load removes (its datasets.py would shadow a
    package)."""
    path = Path(__file__).with_name("embed_load.py")
    spec = importlib.util.spec_from_file_location("embed_load", path)
    module = sys.modules["embed_load"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(dsn: str, threads: int, pieces: mp.Queue, results: mp.Queue) -> None:
    """Sync pieces until the queue is empty; each result goes back with this worker's pid."""
    import torch

    torch.set_num_threads(threads)
    os.environ["WAREHOUSE_DSN"] = dsn
    settings = load_settings()
    while True:
        piece = pieces.get()
        if piece is None:
            return
        results.put((os.getpid(), sync_piece(settings, piece).as_dict()))


def run(dsn: str, workers: int, cores: int) -> dict:
    """Index the scratch marts from empty with `workers` processes; the figures."""
    os.environ["WAREHOUSE_DSN"] = dsn
    settings = load_settings()
    began = time.perf_counter()
    planned = plan_pieces(settings, piece_documents=PIECE_DOCUMENTS)
    ctx = mp.get_context("spawn")
    pieces, results = ctx.Queue(), ctx.Queue()
    for piece in planned:
        pieces.put(piece)
    threads = max(1, cores // workers)
    procs = [
        ctx.Process(target=worker, args=(dsn, threads, pieces, results)) for _ in range(workers)
    ]
    for proc in procs:
        pieces.put(None)
        proc.start()
    done = []
    while len(done) < len(planned):
        try:
            done.append(results.get(timeout=5))
        except queue.Empty:
            if not any(proc.is_alive() for proc in procs):
                codes = [proc.exitcode for proc in procs]
                raise SystemExit(f"workers exited ({codes}) with pieces left") from None
    for proc in procs:
        proc.join()
    result = finish_sync(settings, [r for _, r in done])
    seconds = time.perf_counter() - began
    with psycopg.connect(dsn) as conn:
        version = conn.execute(
            "select version_id from vectors.index_versions where status = 'active'"
        ).fetchone()[0]
        chunk_ids = {r[0] for r in conn.execute(f"select chunk_id from vectors.chunks_{version}")}
    shares: dict[int, int] = {}
    for pid, _ in done:
        shares[pid] = shares.get(pid, 0) + 1
    return {
        "seconds": seconds,
        "documents": result.documents_changed,
        "chunks": result.chunks_written,
        "pieces": len(planned),
        "shares": sorted(shares.values(), reverse=True),
        "chunk_ids": chunk_ids,
        "failures": result.failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --documents")
    args = parser.parse_args()
    wanted = max(1, round(args.documents * args.scale))
    embed_load = _embed_load()
    corpus = embed_load.sample_corpus()
    docs = embed_load.repeated(corpus, math.ceil(wanted / len(corpus)))[:wanted]
    settings = load_settings()
    cores = os.cpu_count() or 1
    print(f"{len(docs)} documents, pieces of {PIECE_DOCUMENTS}, {cores} cores")
    figures = {}
    for workers in (int(w) for w in args.workers.split(",")):
        with scratch_database(settings.require("warehouse_dsn"), "fanout") as dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                embed_load.load_marts(conn, docs)
            figures[workers] = run(dsn, workers, cores)
        f = figures[workers]
        if f["failures"]:
            raise SystemExit(f"{workers} worker(s): {len(f['failures'])} documents failed")
        print(
            f"{workers} worker(s): {f['documents'] / f['seconds']:.1f} documents/s "
            f"({f['chunks'] / f['seconds']:.1f} chunks/s, {f['seconds']:.1f} s), "
            f"{f['pieces']} pieces shared {f['shares']}"
        )
    base = figures[min(figures)]
    for workers, f in sorted(figures.items()):
        assert f["chunk_ids"] == base["chunk_ids"], f"{workers} workers indexed other chunks"
        ratio = base["seconds"] / f["seconds"]
        print(f"ratio {workers} worker(s) / {min(figures)}: {ratio:.2f}x documents/s")
    print("every configuration indexed the same chunks")


if __name__ == "__main__":
    main()
