"""The rejected side of DPO's pairs: the model's own answer to the same instruction.

What a preference pair should teach is "the author's text, not what you would have written";
the most informative rejected answer is therefore the model's own (its stock openers, its loops),
not a sentence generator's. Before DPO, the model DPO starts from answers each pair's prompt
(greedy, its own chat template, about the chosen text's length) in a process of its own
(`python -m twin.training.rejected CONFIG.json`); answers are cached by content hash (model
weights marker, prompt, length, prompt version), so a rerun generates nothing. A pair whose own
answer is missing or cannot be balanced against the chosen text keeps the dataset's rejected
text, and is counted as `fallback` (`twin.datasets.preference` balances and labels both).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PROMPT_VERSION = "1"
CHARS_PER_TOKEN = 4
BUDGET_STEP = 64
MAX_TOKENS = 192


class RejectedConfig(BaseModel):
    """Prompts (with the chosen text's length) to answer with the model at `model_path`."""

    model_config = ConfigDict(extra="forbid")

    model_path: str
    model_key: str
    prompts: list[tuple[str, int]]
    output_path: Path
    cache_dir: Path
    bf16: bool = False


def token_budget(target_chars: int) -> int:
    """New tokens for an answer of about `target_chars` characters (a little over, so trimming
    at a sentence boundary can match the lengths), rounded up to a multiple of `BUDGET_STEP` so
    prompts share a batch."""
    wanted = int(target_chars / CHARS_PER_TOKEN * 1.2)
    return min(MAX_TOKENS, -(-max(wanted, 1) // BUDGET_STEP) * BUDGET_STEP)


def cache_key(model_key: str, prompt: str, target_chars: int) -> str:
    payload = json.dumps([PROMPT_VERSION, model_key, prompt, token_budget(target_chars)])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def model_key(model_path: str) -> str:
    """What identifies a model's weights: a packaged base model's marker, else the digest of
    its safetensors files' names, sizes and modification times."""
    folder = Path(model_path)
    from twin.store.base_models import MARKER

    if (folder / MARKER).exists():
        return (folder / MARKER).read_text()
    stats = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*.safetensors")
    )
    return hashlib.sha256(json.dumps([str(folder), stats]).encode()).hexdigest()


def answer_all(config: RejectedConfig) -> dict[str, str]:
    """Answers by prompt: cached ones read, the rest generated (grouped by length budget)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.training.evaluate import generate_answers

    answers: dict[str, str] = {}
    missing: dict[int, list[str]] = {}
    for prompt, target in config.prompts:
        path = config.cache_dir / f"{cache_key(config.model_key, prompt, target)}.json"
        if path.exists():
            answers[prompt] = json.loads(path.read_text())["answer"]
        else:
            missing.setdefault(token_budget(target), []).append(prompt)
    if missing:
        tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        model = AutoModelForCausalLM.from_pretrained(config.model_path, dtype=torch.float32)
        model.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            for budget, prompts in sorted(missing.items()):
                for prompt, text in zip(
                    prompts, generate_answers(model, tokenizer, prompts, budget), strict=True
                ):
                    answers[prompt] = text
        config.cache_dir.mkdir(parents=True, exist_ok=True)
        for prompt, target in config.prompts:
            path = config.cache_dir / f"{cache_key(config.model_key, prompt, target)}.json"
            if not path.exists() and prompt in answers:
                path.write_text(json.dumps({"prompt": prompt, "answer": answers[prompt]}))
    config.output_path.parent.mkdir(parents=True, exist_ok=True)
    config.output_path.write_text(json.dumps(answers, indent=2))
    return answers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    answer_all(RejectedConfig.model_validate_json(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
