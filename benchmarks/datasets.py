"""Dataset generation throughput: the local-model generator against the bare model, and the
offline path on many documents.

- local: `LocalModelGenerator.instructions` (render the chat prompt, batched greedy generate,
  clean the reply) over `--local-prompts` sections of the sample author, against the bare model's
  `generate` on exactly the same rendered prompts, in the same batches, with the same token
  budget; the bare run is timed before and after ours (their mean is the base). Ratio = ours /
  bare samples per second (aim: at least 0.9).
- offline: sections + keyphrases + templates (instructions) + generic rejected answers over
  `--documents` documents synthesised from the sample author's 67 (each variant carries a
  sentence of its own, so it is a new text with new phrases), timed end to end in-process.

The models are loaded and warmed up before anything is timed. No database is needed.

    python benchmarks/datasets.py [--local-prompts 8] [--batch-size 4] [--documents 10000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and this file would shadow the
# `datasets` package that sentence-transformers imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

from sample_author import load_documents  # noqa: E402
from twin.datasets.generators import SectionPrompt  # noqa: E402
from twin.datasets.generators.base import AnswerPrompt  # noqa: E402
from twin.datasets.generators.local import (  # noqa: E402
    INSTRUCTION_TOKENS,
    LocalModelGenerator,
    instruction_messages,
)
from twin.datasets.generators.offline import OfflineGenerator  # noqa: E402
from twin.datasets.sources import MartDocument, split_sections  # noqa: E402
from twin.settings import load_settings  # noqa: E402
from twin.store.base_models import resolve_base_model  # noqa: E402
from twin.store.embeddings import Embedder  # noqa: E402

VOCABULARY = (
    "partition",
    "retry",
    "watermark",
    "lineage",
    "backfill",
    "schema",
    "contract",
    "freshness",
    "latency",
    "budget",
    "replica",
    "snapshot",
    "checksum",
    "embedding",
    "reranker",
    "tokenizer",
    "adapter",
    "checkpoint",
    "gradient",
    "quantisation",
    "shard",
    "cluster",
    "pipeline",
    "warehouse",
    "notebook",
    "dashboard",
    "incident",
    "runbook",
)


def sample_sections(limit: int) -> list[SectionPrompt]:
    sections = []
    for d in load_documents():
        if d.pii:
            continue
        doc = MartDocument(
            document_id=d.key, author="a", platform=d.platform, document_kind=d.kind,
            title=d.title, body=d.body, clean_hash=d.key,
        )  # fmt: skip
        for s in split_sections(doc):
            sections.append(
                SectionPrompt(s.section_id, s.platform, s.document_kind, s.title,
                              s.heading_path, s.text)
            )  # fmt: skip
    return sections[:limit]


def bench_local(prompts: int, batch_size: int) -> dict[str, float]:
    settings = load_settings()
    folder = resolve_base_model(
        "smollm2-135m", settings.model_cache_dir or settings.home / "models"
    )
    generator = LocalModelGenerator(
        folder.path, "smollm2-135m", batch_size=batch_size, threads=settings.generator_threads
    )
    sections = sample_sections(prompts)
    model, tokenizer = generator.load()
    rendered = [generator.render(instruction_messages(s)) for s in sections]
    generator.generate(rendered[:batch_size], [4] * min(batch_size, len(rendered)))  # warm up

    def bare() -> float:
        import torch

        order = sorted(range(len(rendered)), key=lambda i: len(rendered[i]))
        began = time.perf_counter()
        for start in range(0, len(order), batch_size):
            batch = [rendered[i] for i in order[start : start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                model.generate(
                    **enc, max_new_tokens=INSTRUCTION_TOKENS, do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )  # fmt: skip
        return time.perf_counter() - began

    bare_before = bare()
    began = time.perf_counter()
    results = generator.instructions(sections)
    ours = time.perf_counter() - began
    bare_after = bare()
    base = (bare_before + bare_after) / 2
    return {
        "prompts": len(sections),
        "bare_s": round(base, 2),
        "ours_s": round(ours, 2),
        "bare_samples_per_s": round(len(sections) / base, 3),
        "ours_samples_per_s": round(len(sections) / ours, 3),
        "ratio": round(base / ours, 3),
        "instructions_kept": sum(r.text is not None for r in results),
    }


def synthetic_documents(count: int) -> list[MartDocument]:
    rng = random.Random(7)
    base = [d for d in load_documents() if not d.pii]
    docs = []
    for i in range(count):
        d = base[i % len(base)]
        words = rng.sample(VOCABULARY, 3)
        extra = f"In run {i} we checked the {words[0]} against the {words[1]} and the {words[2]}."
        body = d.body.replace("\n\n", f"\n\n{extra} ", 1)
        docs.append(
            MartDocument(
                document_id=f"{d.key}#{i}", author="a", platform=d.platform,
                document_kind=d.kind, title=d.title, body=body, clean_hash=str(i),
            )
        )  # fmt: skip
    return docs


def bench_offline(documents: int) -> dict[str, float]:
    settings = load_settings()
    embedder = Embedder.get(settings.embedding_model, settings.embedding_model_name)
    embedder.encode(["warm up the model"])
    generator = OfflineGenerator(embedder)
    docs = synthetic_documents(documents)
    began = time.perf_counter()
    sections = []
    for doc in docs:
        for s in split_sections(doc):
            sections.append(
                SectionPrompt(s.section_id, s.platform, s.document_kind, s.title,
                              s.heading_path, s.text)
            )  # fmt: skip
    instructions = []
    for start in range(0, len(sections), 2048):
        instructions += generator.instructions(sections[start : start + 2048])
    answers = generator.answers(
        [
            AnswerPrompt(g.key, g.text or "", "blog", len(s.text))
            for g, s in zip(instructions, sections, strict=True)
        ]
    )
    seconds = time.perf_counter() - began
    return {
        "documents": len(docs),
        "sections": len(sections),
        "instructions": len(instructions),
        "rejected": len(answers),
        "phrases_embedded": len(generator._phrase_vectors),
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(instructions) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    if not args.skip_local:
        local = bench_local(args.local_prompts, args.batch_size)
        print(f"local generator (SmolLM2-135M, greedy, batch {args.batch_size}): {local}")
        print(f"  ratio ours/bare samples per second: {local['ratio']} (aim >= 0.9)")
    offline = bench_offline(args.documents)
    print(f"offline generator: {offline}")


if __name__ == "__main__":
    main()
