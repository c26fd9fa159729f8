"""Serving on Triton (CPU) with SmolLM2-135M-Instruct: overhead, RAG latency, dynamic batching.

Starts Postgres and Triton in a scratch stack home (stopped afterwards), builds the sample
author's index with the feature pipeline in a scratch database, materialises the packaged
SmolLM2-135M-Instruct as twin_llm version 1, and prints:

1. twin_llm through Triton (HTTP, one request at a time) against in-process `Generator.generate`
   on the same model, prompts and max_tokens, interleaved, in this run: completion tokens/s and
   their ratio;
2. twin_rag p50/p95 end-to-end latency at concurrency 1, 4 and 8, with the retrieval and
   generation split and the prompt's tokens (from each answer's meta), and twin_llm's requests
   per execution meanwhile (the batches its dynamic batcher formed, from Triton's metrics);
3. twin_llm throughput at concurrency 8 with dynamic batching on, then off (same server, config
   reloaded): tokens/s and the gain;
4. twin_rag requests/s at concurrency 4 against concurrency 1 (alternating rounds of 4
   requests at c=1 and 12 at c=4, medians), with each Triton instance on
   torch's default threads (one per core, every instance at once) and then on
   `--cpu-threads` threads (`SERVING_CPU_THREADS`; twin_llm and twin_rag reloaded);
5. the ceiling of section 4's ratio: the in-process generator on twin_rag's own prompts (the
   questions' prompts as twin_rag builds them), in batches of 1, 2 and 4, with the prefill's
   share of one request. Requests/s of batches of b against batches of 1 is what concurrency
   gains when the dynamic batcher forms batches of b. Closed-loop clients at concurrency 4
   split into cohorts that alternate on the generator (batches of 2 on average, section 2),
   so the batch-2 gain bounds twin_rag's c=4 / c=1 and the batch-4 gain bounds any batcher
   that does not add requests to a running generation.

    python -u benchmarks/serve.py [--max-tokens 32] [--requests 16] [--rag-instances 4]
                                  [--context-tokens 384] [--cpu-threads 1] [--scale 1]

`--scale` multiplies `--requests` (0.25 for a quick run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The script's own folder holds datasets.py, which would hide the `datasets` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(PROJECT_ROOT))

PROMPTS = [
    "Write a short LinkedIn post about idempotent data pipelines.",
    "Explain in three sentences why tests should be able to fail.",
    "What is a good first step when a nightly job doubles the numbers?",
    "Give two tips for tuning an HNSW index in pgvector.",
]
QUESTIONS = [
    "What is the Tuesday test?",
    "What happened when the invoice loader ran twice at Midsummer?",
    "What values of m and ef_construction should I pick for an HNSW index?",
    "How do I make a job that can be executed a second time without doubling the numbers?",
]


def chat(tokenizer, text: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def llm_counts(metrics_url: str) -> tuple[float, float]:
    """twin_llm's inference requests and executions so far (Triton's metrics): requests per
    execution is the batch the dynamic batcher formed."""
    import httpx

    from twin.deploy.monitor import parse_prometheus

    names = ("nv_inference_request_success", "nv_inference_exec_count")
    totals = dict.fromkeys(names, 0.0)
    for (name, labels), value in parse_prometheus(httpx.get(metrics_url, timeout=10).text).items():
        if name in totals and dict(labels).get("model") == "twin_llm":
            totals[name] += value
    return totals[names[0]], totals[names[1]]


def run_concurrent(fn, items: list, concurrency: int) -> tuple[list, float]:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(fn, items))
    return results, time.perf_counter() - start


def build_index(settings):
    """The sample author's chunks in a scratch database (the feature pipeline's own code)."""
    import psycopg

    from tests.integration.test_retrieval import MARTS_DDL, sample_document_rows
    from twin.features.pipeline import sync_features

    with psycopg.connect(settings.require("warehouse_dsn"), autocommit=True) as conn:
        conn.execute(MARTS_DDL)
        rows = sample_document_rows()
        columns = list(rows[0])
        with conn.cursor().copy(f"copy marts.documents ({', '.join(columns)}) from stdin") as cp:
            for row in rows:
                cp.write_row([row[c] for c in columns])
    result = sync_features(settings)
    if not result.chunks_written or result.failures:
        raise SystemExit(f"the sample author's index was not built: {result.as_dict()}")
    print(f"index: {result.chunks_written} chunks of the sample author")


def batch_gain(settings, local, max_tokens: int, rounds: int) -> None:
    """Section 5: seconds per request of the in-process generator on twin_rag's prompts in
    batches of 1, 2 and 4, and of a one-token generation (the prefill) at batch 1; every round
    times each of them once, in turn, so the machine's drift hits them alike; medians of
    `rounds`."""
    from twin.serving.client import ask

    prompts = [ask(settings, q, prompt_only=True)["meta"]["prompt"] for q in QUESTIONS]
    lengths = [local.count_tokens(p) for p in prompts]
    local.generate(prompts, [2] * len(prompts))  # warm, at the largest batch

    def per_request(size: int, tokens: int) -> float:
        start = time.perf_counter()
        for i in range(0, len(prompts), size):
            chunk = prompts[i : i + size]
            local.generate(chunk, [tokens] * len(chunk))
        return (time.perf_counter() - start) / len(prompts)

    kinds = {1: max_tokens, 2: max_tokens, 4: max_tokens, "prefill": 1}
    seen: dict[object, list[float]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, tokens in kinds.items():
            seen[kind].append(per_request(1 if kind == "prefill" else kind, tokens))
    seconds = {kind: statistics.median(values) for kind, values in seen.items()}
    print(
        f"\n5. in-process generator on twin_rag's prompts ({statistics.median(lengths):.0f} "
        f"tokens p50, max_tokens {max_tokens}, medians of {rounds} alternating rounds)"
    )
    print("   batch   s per request   requests/s vs batch 1")
    for size in (1, 2, 4):
        print(f"   {size:<7} {seconds[size]:>13.2f} {seconds[1] / seconds[size]:>23.2f}")
    print(
        f"   prefill (one token) {seconds['prefill']:.2f} s: "
        f"{seconds['prefill'] / seconds[1]:.0%} of a request at batch 1"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=16, help="per concurrency level")
    parser.add_argument("--rag-instances", type=int, default=4)
    parser.add_argument("--context-tokens", type=int, default=384, help="passages' budget")
    parser.add_argument("--cpu-threads", type=int, default=1, help="section 4's threads")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --requests")
    args = parser.parse_args()
    args.requests = max(2, round(args.requests * args.scale))

    from twin.serving.client import ask, generate_text
    from twin.serving.configs import LLM_MODEL
    from twin.serving.generation import Generator
    from twin.serving.repository import (
        load_rag,
        load_versions,
        materialise_version,
        repository_path,
        set_default_version,
        write_llm_configs,
    )
    from twin.settings import load_settings
    from twin.stack import Stack
    from twin.store.base_models import resolve_base_model
    from twin.store.warehouse import scratch_database

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack is stopped
    home = Path(tempfile.mkdtemp(prefix="twin-bench-", dir="/tmp"))
    home.chmod(0o755)
    stack = Stack(home, ("postgres", "triton"))
    try:
        stack.up()
        for key, value in stack.endpoints().items():
            os.environ[key] = value
        base = load_settings(home)
        cache = Path(os.environ.get("TWIN_MODEL_CACHE") or PROJECT_ROOT / ".twin" / "models")
        folder = resolve_base_model("smollm2-135m", cache).path
        with scratch_database(base.require("warehouse_dsn"), "bench_serve") as dsn:
            settings = base.model_copy(
                update={
                    "warehouse_dsn": dsn,
                    "serving_rag_instances": args.rag_instances,
                    "serving_default_max_tokens": args.max_tokens,
                    "serving_context_tokens": args.context_tokens,
                    "serving_request_timeout_s": 900.0,  # a loaded 2-core machine is slow
                }
            )
            build_index(settings)
            materialise_version(settings, 1, source_dir=folder)
            load_versions(settings, [1], stream=False)
            set_default_version(settings, 1)
            load_rag(settings)
            local = Generator(folder)
            prompts = [chat(local.tokenizer, p) for p in PROMPTS]
            mt = args.max_tokens

            # 1. Triton overhead at concurrency 1 (warm both first).
            generate_text(settings, prompts[0], max_tokens=4)
            local.generate([prompts[0]], [4])
            # Interleaved, so a change in the machine's load hits both sides alike.
            via_triton, in_process, triton_s, local_s = [], [], 0.0, 0.0
            for p in prompts:
                start = time.perf_counter()
                via_triton.append(generate_text(settings, p, max_tokens=mt))
                triton_s += time.perf_counter() - start
                start = time.perf_counter()
                in_process.append(local.generate([p], [mt])[0])
                local_s += time.perf_counter() - start
            triton_tokens = sum(r["completion_tokens"] for r in via_triton)
            local_tokens = sum(g.completion_tokens for g in in_process)
            same = sum(r["text"] == g.text for r, g in zip(via_triton, in_process, strict=True))
            tps_triton, tps_local = triton_tokens / triton_s, local_tokens / local_s
            print("\n1. twin_llm through Triton vs in-process generate (c=1, same prompts)")
            print(
                f"   in-process: {local_tokens} tokens in {local_s:.1f} s = {tps_local:.1f} tok/s"
            )
            print(f"   Triton:     {triton_tokens} tokens in {triton_s:.1f} s", end="")
            print(f" = {tps_triton:.1f} tok/s")
            print(
                f"   ratio Triton / in-process: {tps_triton / tps_local:.2f} "
                f"(identical texts: {same}/{len(prompts)})"
            )

            # 2. twin_rag latency split at concurrency 1, 4, 8.
            print(f"\n2. twin_rag end to end (max_tokens {mt}, {args.rag_instances} instances)")
            # Each instance loads its embedder on its first request: warm them all first, so
            # the levels below time serving, not loading.
            warm = [QUESTIONS[i % len(QUESTIONS)] for i in range(3 * args.rag_instances)]
            run_concurrent(lambda q: ask(settings, q, prompt_only=True), warm, args.rag_instances)
            print(
                "   c   n    p50 ms   p95 ms   retrieval p50   generation p50   req/s"
                "   prompt tokens p50   twin_llm batch"
            )
            for concurrency in (1, 4, 8):
                before = llm_counts(os.environ["TRITON_METRICS_URL"])
                n = max(concurrency, args.requests if concurrency > 1 else args.requests // 2)
                items = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]

                def one(q: str) -> tuple[float, dict]:
                    t = time.perf_counter()
                    result = ask(settings, q)
                    return (time.perf_counter() - t) * 1000, result["meta"]

                results, wall = run_concurrent(one, items, concurrency)
                total = [r[0] for r in results]
                retrieval = [r[1]["timings_ms"]["retrieval"] for r in results]
                generation = [r[1]["timings_ms"].get("generation", 0.0) for r in results]
                prompt_tokens = [r[1].get("prompt_tokens") or 0 for r in results]
                after = llm_counts(os.environ["TRITON_METRICS_URL"])
                requests, executions = (a - b for a, b in zip(after, before, strict=True))
                print(
                    f"   {concurrency:<3} {n:<4} {pct(total, 0.5):>7.0f} {pct(total, 0.95):>8.0f} "
                    f"{statistics.median(retrieval):>15.0f} {statistics.median(generation):>16.0f}"
                    f" {n / wall:>7.2f} {statistics.median(prompt_tokens):>19.0f}"
                    f" {requests / max(executions, 1):>16.2f}"
                )

            # 3. Dynamic batching gain at concurrency 8.
            items = [prompts[i % len(prompts)] for i in range(args.requests)]

            def complete(p: str) -> int:
                return generate_text(settings, p, max_tokens=mt)["completion_tokens"]

            rates = {}
            for batching in (True, False):
                variant = settings.model_copy(update={"serving_dynamic_batching": batching})
                write_llm_configs(variant, [1])
                load_versions(variant, [], stream=False)
                complete(prompts[0])
                tokens, wall = run_concurrent(complete, items, 8)
                rates[batching] = sum(tokens) / wall
            write_llm_configs(settings, [1])
            print("\n3. twin_llm at concurrency 8, dynamic batching on vs off")
            print(
                f"   on:  {rates[True]:.1f} tok/s   off: {rates[False]:.1f} tok/s   "
                f"gain: {rates[True] / rates[False]:.2f}x"
            )

            # 4. Concurrency gain of twin_rag by torch threads per instance.
            rounds = max(3, args.requests // 4)
            print(
                "\n4. twin_rag req/s at c=4 vs c=1 by torch threads per Triton instance "
                f"(medians of {rounds} rounds, each c=1 then c=4)"
            )
            print("   threads   c=1 req/s   c=4 req/s   c=4 / c=1 (median of the rounds' ratios)")
            for threads in (0, args.cpu_threads):
                variant = settings.model_copy(update={"serving_cpu_threads": threads})
                write_llm_configs(variant, [1])
                load_versions(variant, [], stream=False)
                load_rag(variant)
                run_concurrent(lambda q: ask(settings, q), warm, args.rag_instances)
                rates: dict[int, list[float]] = {1: [], 4: []}
                for _ in range(rounds):
                    for concurrency in (1, 4):
                        n = len(QUESTIONS) * (3 if concurrency > 1 else 1)
                        items = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
                        _, wall = run_concurrent(lambda q: ask(settings, q), items, concurrency)
                        rates[concurrency].append(n / wall)
                ratio = statistics.median(b / a for a, b in zip(rates[1], rates[4], strict=True))
                one, four = statistics.median(rates[1]), statistics.median(rates[4])
                label = "default" if threads == 0 else str(threads)
                print(f"   {label:<9} {one:>9.2f} {four:>11.2f} {ratio:>11.2f}")
            write_llm_configs(settings, [1])
            load_versions(settings, [], stream=False)
            load_rag(settings)

            # 5. The generator's own batching gain on twin_rag's prompts.
            batch_gain(settings, local, mt, max(3, args.requests // 2))
            print(f"\nrepository: {repository_path(settings) / LLM_MODEL}")
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
