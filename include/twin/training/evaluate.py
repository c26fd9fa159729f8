"""Base vs SFT vs DPO on the held-out split: perplexity of the author's held-out answers, style
similarity of generations to the author (embedding centroid cosine and stylometry), answer
lengths, and an optional LLM judge. Runs as its own process (`python -m twin.training.evaluate
CONFIG.json`) so the caller never holds a model."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PUNCTUATION = ",;:!?()-\u2014'\""
METRICS = (
    "perplexity",
    "style_similarity",
    "stylometry_similarity",
    "answer_words",
    "judge_accuracy",
    "judge_style",
)


class EvalConfig(BaseModel):
    """What to evaluate: models by label, held-out (instruction, answer) pairs, the output file."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, str]
    heldout: list[tuple[str, str]]
    reference_answers: list[str]
    output_path: Path
    generate_samples: int = 8
    max_new_tokens: int = 48
    max_length: int = 256
    bf16: bool = False
    judge_url: str | None = None
    judge_model: str | None = None


def stylometry(texts: list[str]) -> dict[str, float]:
    """Mean sentence length (words), punctuation per 100 characters, type-token ratio, mean word
    length: cheap fingerprints of how someone writes."""
    joined = " ".join(t.strip() for t in texts if t.strip())
    words = re.findall(r"[A-Za-z0-9']+", joined)
    sentences = [s for s in re.split(r"[.!?]+(?:\s|$)", joined) if re.search(r"\w", s)]
    chars = max(len(joined), 1)
    return {
        "sentence_words": len(words) / max(len(sentences), 1),
        "punctuation_per_100": 100.0 * sum(joined.count(c) for c in PUNCTUATION) / chars,
        "type_token_ratio": len({w.lower() for w in words}) / max(len(words), 1),
        "word_chars": sum(len(w) for w in words) / max(len(words), 1),
    }


def stylometry_similarity(candidate: dict[str, float], reference: dict[str, float]) -> float:
    """1 minus the mean relative gap between two stylometric profiles (1: identical)."""
    gaps = [
        min(1.0, abs(candidate[k] - reference[k]) / max(abs(reference[k]), 1e-6)) for k in reference
    ]
    return 1.0 - sum(gaps) / len(gaps)


def centroid_cosine(a, b) -> float:
    import numpy as np

    ca, cb = np.asarray(a).mean(axis=0), np.asarray(b).mean(axis=0)
    denom = float(np.linalg.norm(ca) * np.linalg.norm(cb)) or 1.0
    return float(ca @ cb / denom)


def answer_perplexity(model, tokenizer, pairs: list[tuple[str, str]], max_length: int) -> float:
    """exp(mean negative log-likelihood) of each answer's tokens given its instruction, through the
    chat template (the end-of-turn token counts as part of the answer)."""
    import torch

    total_nll, total_tokens = 0.0, 0
    model.eval()
    for instruction, answer in pairs:
        messages = [{"role": "user", "content": instruction}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:max_length]
        n_prompt = min(len(prompt_ids), len(ids))
        if len(ids) - n_prompt < 1:
            continue
        input_ids = torch.tensor([ids])
        labels = input_ids.clone()
        labels[0, :n_prompt] = -100
        with torch.no_grad():
            loss = model(input_ids=input_ids, labels=labels).loss
        count = len(ids) - n_prompt
        total_nll += float(loss) * count
        total_tokens += count
    return math.exp(total_nll / max(total_tokens, 1))


def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers to each prompt, batched with left padding."""
    import torch

    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]
    answers: list[str] = []
    for start in range(0, len(texts), 8):
        batch = tokenizer(
            texts[start : start + 8], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            )
        new = out[:, batch["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return answers


def evaluate(config: EvalConfig) -> dict:
    """Rows of metrics per model label, plus the sampled generations."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.settings import load_settings
    from twin.store.embeddings import Embedder

    torch.manual_seed(0)
    embedder = Embedder.from_settings(load_settings())
    reference_vectors = embedder.encode(config.reference_answers)
    reference_style = stylometry(config.reference_answers)
    prompts = [i for i, _ in config.heldout[: config.generate_samples]]
    rows, generations = [], {}
    for label, path in config.models.items():
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        # bf16 autocast where the trainer used it (about 2x faster on CPUs with AVX-512 BF16);
        # every model is scored the same way, so the comparison stays fair
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            ppl = answer_perplexity(model, tokenizer, config.heldout, config.max_length)
            answers = generate_answers(model, tokenizer, prompts, config.max_new_tokens)
        del model
        nonempty = [a for a in answers if a] or [""]
        row = {
            "model": label,
            "perplexity": round(ppl, 4),
            "style_similarity": round(
                centroid_cosine(embedder.encode(nonempty), reference_vectors), 4
            ),
            "stylometry_similarity": round(
                stylometry_similarity(stylometry(nonempty), reference_style), 4
            ),
            "answer_words": round(sum(len(a.split()) for a in answers) / max(len(answers), 1), 2),
        }
        if config.judge_url:
            from twin.training.judge import judge_answers

            row |= judge_answers(config.judge_url, config.judge_model, config.heldout, answers)
        rows.append(row)
        generations[label] = [
            {"prompt": p, "answer": a} for p, a in zip(prompts, answers, strict=True)
        ]
    author = {
        "model": "author (held-out)",
        "style_similarity": 1.0,
        "stylometry_similarity": 1.0,
        "answer_words": round(
            sum(len(a.split()) for a in config.reference_answers)
            / max(len(config.reference_answers), 1),
            2,
        ),
    }
    result = {
        "rows": rows,
        "author": author,
        "generations": generations,
        "heldout_pairs": len(config.heldout),
    }
    config.output_path.parent.mkdir(parents=True, exist_ok=True)
    config.output_path.write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    evaluate(EvalConfig.model_validate_json(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
