"""How a registered version decodes: its generation settings, and the stop and pad tokens its
own tokenizer defines. Evaluation, Triton's `twin_llm` / `twin_llm_stream` and therefore shadow
replay all build `generate()`'s arguments here, so a version answers the same everywhere.

The settings travel with the model as `generation_config.json` (Hugging Face's file, which
`from_pretrained` reads; `seed` and `stop` are kept beside its own keys, which a Hugging Face
re-save drops, so serving writes them again from the registry tags `generation.<field>`). A
request may override them within the fields' bounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

GENERATION_CONFIG = "generation_config.json"
TAG_PREFIX = "generation."
STOP_KEY = "twin_stop"
SEED_KEY = "twin_seed"
MARK = "\u2063TWIN-END-MARK\u2063"
# Hugging Face's default top-k, which its sampled decoding applies unless a model sets another
TOP_K = 50
# Names how a sampled token is drawn: a cache of sampled answers keys on it (same seed, same text)
SAMPLER = "top-k-multinomial-per-row/2"
# Names what the repetition controls read (the answer, not the prompt): a cache of answers keys
# on it
REPETITION_SCOPE = "answer-only/1"


class GenerationSettings(BaseModel):
    """Decoding of one version: sampling (temperature 0 is greedy), repetition controls, seed,
    stop sequences. Bounds are the ones a request override is held to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    no_repeat_ngram_size: int = Field(default=0, ge=0, le=10)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    stop: tuple[str, ...] = Field(default=(), max_length=8)

    def generate_kwargs(
        self, seeds: Sequence[int] | None = None, *, prompt_length: int
    ) -> dict[str, Any]:
        """Keyword arguments of one `model.generate` call on a batch padded to `prompt_length`
        tokens: a sampled setting draws every row from its own generator, seeded with
        `seeds[row]` (default: this setting's seed).

        The repetition penalty and the no-repeat n-gram size read the answer only. Hugging
        Face's own (the `repetition_penalty` / `no_repeat_ngram_size` arguments) read the prompt
        too in a decoder-only model: every token of the retrieved passages would be penalised
        and every n-gram of them banned, so a twin could not say what its own writing says.
        Both are passed as neutral so that a model's `generation_config.json` (which holds them)
        does not apply them that way again.
        """
        processors: list[Any] = []
        if self.repetition_penalty != 1.0:
            from transformers import RepetitionPenaltyLogitsProcessor

            processors.append(
                RepetitionPenaltyLogitsProcessor(
                    self.repetition_penalty, prompt_ignore_length=prompt_length
                )
            )
        if self.no_repeat_ngram_size:
            processors.append(AnswerNoRepeatNGram(self.no_repeat_ngram_size, prompt_length))
        kwargs: dict[str, Any] = {
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if self.temperature > 0:  # the sampler draws last, from what the controls left
            processors.append(Sampler(self.temperature, self.top_p, seeds or (self.seed,)))
        return kwargs | {"logits_processor": processors} if processors else kwargs

    def cut(self, text: str) -> str:
        """The text up to the first stop sequence."""
        for stop in self.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        return text

    def override(self, **values: Any) -> GenerationSettings:
        """A copy with the non-None `values`, validated against the bounds; ValueError names
        the field and its bound."""
        changes = {k: v for k, v in values.items() if v is not None}
        try:
            return GenerationSettings.model_validate(self.model_dump() | changes)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"generation setting '{field}': {first['msg']}") from None

    def tags(self) -> dict[str, str]:
        """Registry tags `generation.<field>`."""
        return {
            f"{TAG_PREFIX}{k}": json.dumps(v) if isinstance(v, list | tuple) else str(v)
            for k, v in self.model_dump(mode="json").items()
        }

    def save(self, model_dir: Path) -> Path:
        """Merge these settings into the folder's `generation_config.json`."""
        path = Path(model_dir) / GENERATION_CONFIG
        config = json.loads(path.read_text()) if path.exists() else {}
        config |= {
            "do_sample": self.temperature > 0,
            "temperature": self.temperature if self.temperature > 0 else 1.0,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            SEED_KEY: self.seed,
            STOP_KEY: list(self.stop),
        }
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> GenerationSettings:
        """The settings saved in a model folder; defaults (greedy, no repetition controls) for a
        folder without them."""
        path = Path(model_dir) / GENERATION_CONFIG
        config = json.loads(path.read_text()) if path.exists() else {}
        return cls(
            temperature=float(config.get("temperature") or 1.0) if config.get("do_sample") else 0.0,
            top_p=float(config.get("top_p") or 1.0),
            repetition_penalty=float(config.get("repetition_penalty") or 1.0),
            no_repeat_ngram_size=int(config.get("no_repeat_ngram_size") or 0),
            seed=int(config.get(SEED_KEY) or 0),
            stop=tuple(config.get(STOP_KEY) or ()),
        )

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> GenerationSettings | None:
        """The settings recorded as registry tags, or None when the version has none."""
        values = {
            k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)
        }
        if not values:
            return None
        if "stop" in values:
            values["stop"] = json.loads(values["stop"])
        return cls.model_validate(values)


class AnswerNoRepeatNGram:
    """Hugging Face's no-repeat n-gram rule over the tokens after the first `prompt_length`
    (the answer so far): an n-gram of the answer is not generated twice, one of the prompt may
    be."""

    def __init__(self, size: int, prompt_length: int) -> None:
        from transformers import NoRepeatNGramLogitsProcessor

        self.rule = NoRepeatNGramLogitsProcessor(size)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.rule(input_ids[:, self.prompt_length :], scores)


class Sampler:
    """Temperature, top-k and top-p sampling as the last logits processor of a greedy
    `generate`: it draws each row's token and leaves it the only one standing, so the greedy
    step takes it. The distribution is Hugging Face's (temperature, top-k `TOP_K`, then top-p
    over what top-k kept); what changes is the work and the randomness. Hugging Face sorts and
    draws over the whole vocabulary at every step (49,152 entries for SmolLM2; on 2 CPU cores
    about a quarter of a batch of 24's decoding time); this works on the `TOP_K` best. And each
    row draws from a generator of its own, seeded with its seed (`seeds`: one per row, or one
    for every row), so a request's text depends on its prompt and seed, not on which other
    requests shared its batch, and requests that differ only in their seed can share one."""

    def __init__(
        self, temperature: float, top_p: float, seeds: Sequence[int] = (0,), top_k: int = TOP_K
    ) -> None:
        if temperature <= 0 or not 0 < top_p <= 1 or top_k < 1 or not seeds:
            raise ValueError(
                f"sampler: temperature {temperature}, top_p {top_p}, top_k {top_k}, seeds {seeds}"
            )
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.seeds = list(seeds)
        self._generators: list[Any] = []

    def distribution(self, scores: Any) -> tuple[Any, Any]:
        """(probabilities, token ids) per row, over the `top_k` best scores, best first."""
        import torch

        top, ids = torch.topk(scores, min(self.top_k, scores.shape[-1]), dim=-1)
        top = top / self.temperature
        probs = torch.softmax(top, dim=-1)
        if self.top_p < 1.0:
            # Hugging Face's rule: drop a token when it and every less likely token together
            # hold at most 1 - top_p of the mass; the most likely token always stays
            tail = probs.flip(-1).cumsum(-1).flip(-1)
            drop = tail <= 1 - self.top_p
            drop[..., 0] = False
            probs = torch.softmax(top.masked_fill(drop, float("-inf")), dim=-1)
        return probs, ids

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        rows = scores.shape[0]
        if not self._generators:
            seeds = self.seeds * rows if len(self.seeds) == 1 else self.seeds
            if len(seeds) != rows:
                raise ValueError(f"sampler: {len(self.seeds)} seeds for {rows} rows")
            self._generators = [
                torch.Generator(device=scores.device).manual_seed(seed) for seed in seeds
            ]
        probs, ids = self.distribution(scores)
        draws = torch.cat(
            [
                torch.multinomial(probs[i], 1, generator=generator)
                for i, generator in enumerate(self._generators)
            ]
        )
        chosen = ids.gather(-1, draws[:, None])
        return torch.full_like(scores, float("-inf")).scatter_(-1, chosen, 0.0)


def render_chat(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
) -> str:
    """`messages` through the tokenizer's chat template, as text. A template that refuses a
    system message (Gemma's, Mistral-v0.1's: they raise) gets its text at the head of the first
    user turn, which is how those families are given instructions."""
    from jinja2.exceptions import TemplateError

    def render(chat: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    try:
        return render(messages)
    except TemplateError:
        if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
            raise
    system, user, *rest = messages
    folded = {"role": "user", "content": f"{system['content']}\n\n{user['content']}"}
    return render([folded, *rest])


def end_of_turn(tokenizer: Any) -> str:
    """What the tokenizer's chat template writes after an assistant message's content, up to
    its first whitespace (`<|im_end|>` for ChatML, `<|eot_id|>` for Llama 3, `<end_of_turn>` for
    Gemma, `</s>` for Mistral); the EOS token when the template adds nothing."""
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": MARK},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    suffix = rendered.split(MARK, 1)[1] if MARK in rendered else ""
    suffix = suffix.strip().split()[0] if suffix.strip() else ""
    return suffix or (tokenizer.eos_token or "")


def stop_token_ids(tokenizer: Any, model_config: Any = None) -> list[int]:
    """Token ids that end an answer: the end-of-turn token of the chat template, the tokenizer's
    EOS and the model's configured EOS ids."""
    ids: set[int] = set()
    vocab = tokenizer.get_vocab()
    marker = end_of_turn(tokenizer)
    if marker in vocab:
        ids.add(vocab[marker])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(model_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(i) for i in configured)
    return sorted(ids)


def ensure_pad_token(tokenizer: Any) -> None:
    """Give a tokenizer without a pad token (Llama 3's) its EOS as pad; padding is masked, so
    the choice never reaches the model's inputs."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
