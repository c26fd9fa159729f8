"""A causal LM run locally (the packaged SmolLM2-135M-Instruct by default), greedy and batched.

Greedy decoding keeps the output a function of the input, so the generation cache stays honest.
Prompts are sorted by length and generated in batches (left padding), which is what keeps this
path near the bare model's own `generate` throughput.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twin.datasets.generators.base import AnswerPrompt, Generated, SectionPrompt, Usage
from twin.domain.devices import use_cpu_threads
from twin.domain.generation import render_chat

log = logging.getLogger(__name__)

PROMPT_VERSION = "4"
SECTION_CHARS = 600
INSTRUCTION_TOKENS = 40
MIN_INSTRUCTION_CHARS = 12
MAX_INSTRUCTION_CHARS = 300
# A reply that talks about the prompt instead of asking something.
ECHO_RE = re.compile(
    r"\b(this|the) text\b|\b(this|the) question\b|\bthe answer to\b|^here is", re.IGNORECASE
)
MIN_INSTRUCTION_WORDS = 4


def instruction_messages(section: SectionPrompt) -> list[dict[str, str]]:
    """A plain completion-style request: the 135M model follows it far better than a role."""
    return [
        {
            "role": "user",
            "content": "Write a question that the following text answers.\n\n"
            f"Text: {section.text[:SECTION_CHARS]}\n\nQuestion:",
        },
    ]


def question_messages(section: SectionPrompt) -> list[dict[str, str]]:
    """Asks for a reader's question (not a writing request) that the text answers."""
    return [
        {
            "role": "user",
            "content": "Write one short question a reader could ask that the following text "
            f"answers.\n\nText: {section.text[:SECTION_CHARS]}\n\nQuestion:",
        },
    ]


def answer_messages(prompt: AnswerPrompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt.prompt}]


def clean_instruction(text: str) -> tuple[str | None, str | None]:
    """The first line of a model's reply, unquoted; or (None, reason)."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(request|instruction|question)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip(" \"'*")
    if not line:
        return None, "generator_empty_output"
    too_short = len(line) < MIN_INSTRUCTION_CHARS or len(line.split()) < MIN_INSTRUCTION_WORDS
    if too_short or ECHO_RE.search(line) or line.endswith(":"):
        return None, "generator_invalid_instruction"
    if len(line) > MAX_INSTRUCTION_CHARS:
        return None, "generator_too_long"
    return line, None


class LocalModelGenerator:
    """Instructions and answers from a local causal LM (greedy, batched)."""

    def __init__(self, model_dir: Path, spec: str, batch_size: int = 8, threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.spec = spec
        self.name = f"local-{spec}"
        self.batch_size = batch_size
        self.usage = Usage()
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def config(self) -> dict[str, object]:
        return {
            "kind": "local",
            "model": self.spec,
            "prompts": PROMPT_VERSION,
            "decoding": "greedy",
            "instruction_tokens": INSTRUCTION_TOKENS,
        }

    def load(self) -> tuple[Any, Any]:
        """The model and tokenizer, loaded once."""
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            torch.manual_seed(0)
            # on a shared, oversubscribed CPU one thread is several times faster than two
            use_cpu_threads(self.threads)
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
            model.eval()
            self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def render(self, messages: list[dict[str, str]]) -> str:
        _, tokenizer = self.load()
        return render_chat(tokenizer, messages)

    def generate(self, prompts: Sequence[str], max_new_tokens: Sequence[int]) -> list[str]:
        """Greedy completions of rendered prompts, batched by length."""
        import torch

        model, tokenizer = self.load()
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            enc = tokenizer(
                [prompts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with torch.inference_mode():
                ids = model.generate(
                    **enc,
                    max_new_tokens=max(max_new_tokens[i] for i in batch),
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = ids[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(batch):
                tokens = new[row][: max_new_tokens[i]]
                out[i] = tokenizer.decode(tokens, skip_special_tokens=True)
                self.usage.completion_tokens += int((tokens != tokenizer.pad_token_id).sum())
            self.usage.prompt_tokens += int(enc["attention_mask"].sum())
            self.usage.calls += len(batch)
        return out

    def instructions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        return self._one_line_each(sections, instruction_messages)

    def questions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        return self._one_line_each(sections, question_messages)

    def _one_line_each(
        self, sections: Sequence[SectionPrompt], messages: Callable[[SectionPrompt], list]
    ) -> list[Generated]:
        """One cleaned line per section, from the chat `messages` builds for it."""
        if not sections:
            return []
        prompts = [self.render(messages(s)) for s in sections]
        texts = self.generate(prompts, [INSTRUCTION_TOKENS] * len(prompts))
        results = []
        for section, text in zip(sections, texts, strict=True):
            line, reason = clean_instruction(text)
            results.append(Generated(section.key, text=line, reason=reason))
        return results

    def answers(self, prompts: Sequence[AnswerPrompt]) -> list[Generated]:
        if not prompts:
            return []
        rendered = [self.render(answer_messages(p)) for p in prompts]
        # about four characters per token; a little over, so trimming can match the lengths
        budgets = [max(32, min(256, int(p.target_chars / 4 * 1.2))) for p in prompts]
        texts = self.generate(rendered, budgets)
        return [
            Generated(
                p.key,
                text=t.strip() or None,
                reason=None if t.strip() else "generator_empty_output",
            )
            for p, t in zip(prompts, texts, strict=True)
        ]
