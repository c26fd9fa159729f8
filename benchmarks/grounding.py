"""Does the twin answer from its passages? Repetition controls over the whole sequence against
over the answer only, on the sample author's hand-written questions.

Each question gets the serving prompt (`twin.rag.prompt.build_prompt`, her voice, a token budget)
with three passages: the chunk of its labelled document that shares most words with it, between
the best such chunks of two documents that do not answer it. The packaged SmolLM2-135M-Instruct
answers every question in one batch under each decoding the evaluation chooses from
(`twin.training.evaluate.GRID`), once with Hugging Face's own `repetition_penalty` /
`no_repeat_ngram_size` arguments (which read the prompt too: every passage token penalised,
every passage n-gram banned) and once with `GenerationSettings.generate_kwargs` (the answer
only). Same prompts, seeds and sampler on both sides. Printed per side: groundedness (share of
the answer's content words found in the answering chunk, `twin.training.style.groundedness`),
the answers that open with the document's own words (their first content word in the chunk),
repeated 4-gram rate, answers repeating a sentence, mean words, and one example answer.

    python benchmarks/grounding.py [--model DIR] [--questions 66] [--max-tokens 64] [--scale 1]

`--model` names a model folder (a registered version's, e.g. Triton's
`twin_llm/<version>/hf`) to run instead of the packaged base, with its own decoding
(`generation_config.json`) instead of the grid.

`--scale` multiplies `--questions` (0.25 for a quick run).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The script's own folder holds datasets.py, which would hide the `datasets` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(PROJECT_ROOT))

CHUNK_CHARS = 800
WORD = re.compile(r"[a-z0-9]+")


def chunks(body: str) -> list[str]:
    """The body's paragraphs packed into pieces of about `CHUNK_CHARS`."""
    pieces, current = [], ""
    for paragraph in [p.strip() for p in body.split("\n\n") if p.strip()]:
        if current and len(current) + len(paragraph) > CHUNK_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}".strip()
    return [*pieces, current] if current else pieces


def best_chunk(body: str, question: str) -> tuple[int, str]:
    """(shared words, chunk) of the body's chunk sharing most words with the question."""
    asked = set(WORD.findall(question.lower()))
    return max(
        ((len(asked & set(WORD.findall(c.lower()))), c) for c in chunks(body)), default=(0, "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: the packaged base)")
    parser.add_argument("--questions", type=int, default=66)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--context-tokens", type=int, default=700)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --questions")
    args = parser.parse_args()

    import torch
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sample_author import load_documents
    from sample_author.questions import question_set
    from twin.domain.generation import (
        GenerationSettings,
        Sampler,
        ensure_pad_token,
        stop_token_ids,
    )
    from twin.rag.passages import Passage
    from twin.rag.prompt import build_prompt
    from twin.store.base_models import resolve_base_model
    from twin.training import style
    from twin.training.evaluate import GRID, row_seed

    torch.set_num_threads(args.threads)
    cache = Path(os.environ.get("TWIN_MODEL_CACHE") or PROJECT_ROOT / ".twin" / "models")
    folder = args.model or resolve_base_model("smollm2-135m", cache).path
    decodings = [GenerationSettings.load(folder)] if args.model else list(GRID)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    stops = stop_token_ids(tokenizer, model.generation_config)

    spec = yaml.safe_load(question_set().read_text())
    docs = {f"{d.platform}/{d.slug}": d for d in load_documents()}
    count = max(1, round(args.questions * args.scale))
    prompts, answering = [], []
    for item in spec["questions"][:count]:
        question, relevant = item["question"], [k for k in item["relevant"] if k in docs]
        if not relevant:
            continue
        _, chunk = max(best_chunk(docs[k].body, question) for k in relevant)
        others = sorted(
            (
                (*best_chunk(d.body, question), key)
                for key, d in docs.items()
                if key not in relevant
            ),
            reverse=True,
        )[:2]
        shown = [others[0][1], chunk, others[1][1]]
        passages = [
            Passage(str(i), str(i), f"https://example.org/{i}", f"passage {i}", "blog", "article",
                    None, text)
            for i, text in enumerate(shown)
        ]  # fmt: skip
        plan = build_prompt(
            tokenizer, question, passages, author=spec["author"], context_tokens=args.context_tokens
        )
        prompts.append(plan.prompt)
        answering.append(chunk)
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = batch["input_ids"].shape[1]
    print(f"model: {folder}")
    print(f"{len(prompts)} questions, prompts padded to {width} tokens, {args.max_tokens} new")

    def answers(setting, scope: str) -> list[str]:
        seeds = [row_seed(setting.seed, i) for i in range(len(prompts))]
        kwargs = setting.generate_kwargs(seeds, prompt_length=width)
        if scope == "whole sequence":  # Hugging Face's own arguments; the same sampler draws
            sampler = [p for p in kwargs.get("logits_processor", []) if isinstance(p, Sampler)]
            kwargs |= {
                "repetition_penalty": setting.repetition_penalty,
                "no_repeat_ngram_size": setting.no_repeat_ngram_size,
                "logits_processor": sampler,
            }
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=args.max_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
                **kwargs,
            )
        return [t.strip() for t in tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]

    def opens_from_passage(answer: str, passage: str) -> bool:
        content = [w for w in style.words(answer) if w not in style.FUNCTION_WORDS and len(w) >= 3]
        return bool(content) and content[0] in set(style.words(passage))

    print(f"{'decoding':<34} {'repetition controls read':<16} {'grounded':>9} {'opens':>6} "
          f"{'rep4':>6} {'sent.rep':>8} {'words':>6}")  # fmt: skip
    for setting in decodings:
        label = (
            f"T {setting.temperature} p {setting.top_p} rp {setting.repetition_penalty} "
            f"nr {setting.no_repeat_ngram_size}"
        )
        for scope in ("whole sequence", "answer only"):
            texts = answers(setting, scope)
            pairs = list(zip(texts, answering, strict=True))
            grounded = statistics.fmean(style.groundedness(a, p) for a, p in pairs)
            opens = statistics.fmean(float(opens_from_passage(a, p)) for a, p in pairs)
            repeat = statistics.fmean(style.repeat_rate(a) for a in texts)
            sentence = statistics.fmean(float(style.repeats_a_sentence(a)) for a in texts)
            words = statistics.fmean(len(a.split()) for a in texts)
            print(
                f"{label:<34} {scope:<16} {grounded:>9.3f} {opens:>6.2f} {repeat:>6.3f} "
                f"{sentence:>8.2f} {words:>6.1f}"
            )
            print(f"    first answer: {' '.join(texts[0].split())[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
