"""Sampled decoding: Hugging Face's own sampler against `twin.domain.generation.Sampler`.

A registered version decodes sampled (temperature, top-p, repetition penalty, no-repeat
n-grams: the setting its evaluation chose from `twin.training.evaluate.GRID`). Hugging Face's
sampled `generate` sorts the whole vocabulary for top-p and draws over all of it at every step;
`GenerationSettings.generate_kwargs` hands the draw to `Sampler`, which works on the top-k
tokens only, from the same distribution (see its unit test); both sides apply the same
repetition controls, to the answer. This times both on the packaged
SmolLM2-135M-Instruct, in one process, on the topic-held-out prompts the evaluation asks (the
sample author's offered set), at the batch sizes evaluation (24), the shadow replay (8) and
twin_rag's batcher (1, 4) use. Every row generates exactly `--max-tokens` tokens (EOS is held
off), so both sides do the same work; each round times every (batch, sampler) pair once, in
turn, and the figures are medians of the rounds.

    python -u benchmarks/sampling.py [--max-tokens 64] [--rounds 3] [--batches 1,4,8,24]
                                     [--threads 2] [--scale 1]

`--scale` multiplies `--rounds` (at least 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The script's own folder holds datasets.py, which would hide the `datasets` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(PROJECT_ROOT))
SAMPLE_AUTHOR = "Ada Lindqvist"


def hugging_face_kwargs(settings, prompt_length: int) -> dict:
    """Hugging Face's own sampled decoding after the same repetition controls (which read the
    answer only): what `generate_kwargs` returned before `Sampler`, controls aside."""
    controls = settings.override(temperature=0).generate_kwargs(prompt_length=prompt_length)
    return {
        "logits_processor": controls.get("logits_processor", []),
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "do_sample": True,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="1,4,8,24")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --rounds")
    args = parser.parse_args()
    rounds = max(1, round(args.rounds * args.scale))
    batches = [int(b) for b in args.batches.split(",")]

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.domain.generation import ensure_pad_token
    from twin.store.base_models import resolve_base_model
    from twin.training.evaluate import GRID, chat_prompt
    from twin.training.style_prompts import author_prompts

    torch.set_num_threads(args.threads)
    cache = Path(os.environ.get("TWIN_MODEL_CACHE") or PROJECT_ROOT / ".twin" / "models")
    folder = resolve_base_model("smollm2-135m", cache).path
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    offered, _ = author_prompts(SAMPLE_AUTHOR, [], ["linkedin", "medium", "substack", "blog"])
    texts = [chat_prompt(tokenizer, p.prompt) for p in offered]
    settings = GRID[0]
    sides = ["hugging face", "top-k sampler"]

    def seconds(batch: int, side: str) -> float:
        rows = (texts * (batch // len(texts) + 1))[:batch]
        encoded = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
        width = encoded["input_ids"].shape[1]
        kwargs = (
            hugging_face_kwargs(settings, width)
            if side == "hugging face"
            else settings.generate_kwargs(prompt_length=width)
        )
        torch.manual_seed(settings.seed)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **encoded,
                max_new_tokens=args.max_tokens,
                min_new_tokens=args.max_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **kwargs,
            )
        elapsed = time.perf_counter() - start
        assert out.shape[1] - encoded["input_ids"].shape[1] == args.max_tokens
        return elapsed

    seconds(max(batches), "top-k sampler")  # warm
    seen: dict[tuple[int, str], list[float]] = {(b, s): [] for b in batches for s in sides}
    for r in range(rounds):
        for batch in batches:
            for side in sides if r % 2 == 0 else reversed(list(sides)):
                seen[(batch, side)].append(seconds(batch, side))
        print(f"round {r + 1} of {rounds} done", flush=True)
    print(
        f"\nSmolLM2-135M-Instruct, {settings.model_dump(exclude={'seed', 'stop'})}, "
        f"{args.max_tokens} new tokens per row, {args.threads} threads, "
        f"medians of {rounds} alternating rounds"
    )
    print("   batch   hugging face s   top-k sampler s   ms/step saved   speed-up")
    for batch in batches:
        hf = statistics.median(seen[(batch, "hugging face")])
        ours = statistics.median(seen[(batch, "top-k sampler")])
        saved = (hf - ours) / args.max_tokens * 1000
        print(f"   {batch:<7} {hf:>14.2f} {ours:>17.2f} {saved:>15.1f} {hf / ours:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
