"""Base vs the tuned phases, judged as a reader would judge a twin. Runs as its own process
(`python -m twin.training.evaluate CONFIG.json`) so the caller never holds a model.

- Perplexity of the author's held-out answers given their prompts, for every model, through each
  model's own chat template (the end-of-turn text its template writes counts as the answer's).
- On the author's topic-held-out prompts (`twin.training.style_prompts`), with the candidate's
  decoding and `seeds` seeds each, the base and the candidate (the last phase) are scored on:
  voice score (a classifier of the author's corpus against the base's answers to the held-out
  instructions, on topic-masked character n-grams), voice similarity (the same n-grams' cosine
  to the corpus centroid), raw character n-gram and function-word
  similarity, the embedding centroid, repeated 4-gram rate, stock-phrase rate, copying of the
  training text, sentence repeats and length (`twin.training.style`); mean and sd over seeds.
- On held-out questions given the passage they come from: groundedness of the answer.

The candidate's decoding is chosen on the held-out instructions (not the topic-held-out prompts
it is scored on) from `GRID`: the setting whose answers loop least, then read most like the
author; it is saved with the model (`generation_config.json`) by the caller.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from twin.domain.devices import detect
from twin.domain.generation import (
    REPETITION_SCOPE,
    SAMPLER,
    GenerationSettings,
    end_of_turn,
    ensure_pad_token,
    stop_token_ids,
)
from twin.training import style
from twin.training.style_prompts import StylePrompt

T = TypeVar("T")
PUNCTUATION = ",;:!?()-\u2014'\""
# Every seed's answers to the 24 default prompts in one batch: on 2 CPU cores 3 x 24 prompts x
# 64 tokens took 17.5 s in one batch of 72 against 24.8-28.1 s in three of 24 (SmolLM2-135M,
# float32, sampled), and 24 took 11.9 s in one batch against 14.5 s in two of 12.
BATCH = 72
CALIBRATION_PROMPTS = 24
GRID_PROMPTS = 8
GROUNDED_QUESTIONS = 6
PASSAGE_CHARS = 700
MAX_REPEAT_RATE = 0.05
# Decodings the candidate's is chosen from (sampled, so the seeds measure something).
GRID = (
    GenerationSettings(temperature=0.7, top_p=0.9, repetition_penalty=1.15, no_repeat_ngram_size=4),
    GenerationSettings(temperature=0.5, top_p=0.9, repetition_penalty=1.3, no_repeat_ngram_size=3),
)
SEEDED = (
    "voice_score",
    "voice_similarity",
    "char_similarity",
    "function_word_similarity",
    "style_similarity",
    "repeat_rate",
    "stock_phrase_rate",
    "copy_rate",
    "sentence_repeat_share",
    "groundedness",
    "answer_words",
)
METRICS = ("perplexity", *SEEDED, "stylometry_similarity", "judge_accuracy", "judge_style")


class EvalConfig(BaseModel):
    """What to evaluate: models by label (the last is the candidate), the author's texts, the
    prompt sets, decoding and seeds, and the output file."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, str]
    heldout: list[tuple[str, str]]
    corpus: list[str] = Field(description="the author's writing the voice is compared with")
    training_texts: list[str] = Field(description="what the model trained on (copying)")
    style_prompts: list[StylePrompt]
    style_prompts_origin: str = "offered"
    output_path: Path
    seeds: list[int] = [0, 1, 2]
    generation: GenerationSettings | None = None
    max_new_tokens: int = 64
    max_length: int = 256
    bf16: bool = False
    cache_dir: Path | None = None
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


def chat_prompt(tokenizer, content: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def answer_perplexity(model, tokenizer, pairs: list[tuple[str, str]], max_length: int) -> float:
    """exp(mean negative log-likelihood) of each answer's tokens given its instruction, through
    the model's chat template; the end-of-turn text the template writes after an assistant
    message (`end_of_turn`) counts as part of the answer."""
    import torch

    suffix = end_of_turn(tokenizer)
    total_nll, total_tokens = 0.0, 0
    model.eval()
    for instruction, answer in pairs:
        prompt_ids = tokenizer(chat_prompt(tokenizer, instruction), add_special_tokens=False)[
            "input_ids"
        ]
        answer_ids = tokenizer(answer + suffix, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:max_length]
        n_prompt = min(len(prompt_ids), len(ids))
        if len(ids) - n_prompt < 1:
            continue
        input_ids = torch.tensor([ids], device=model.device)
        labels = input_ids.clone()
        labels[0, :n_prompt] = -100
        with torch.no_grad():
            loss = model(input_ids=input_ids, labels=labels).loss
        count = len(ids) - n_prompt
        total_nll += float(loss) * count
        total_tokens += count
    return math.exp(total_nll / max(total_tokens, 1))


def generate_answers(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    generation: GenerationSettings | None = None,
    seeds: list[int] | None = None,
) -> list[str]:
    """Answers to each user prompt with `generation`'s decoding (greedy when None), batched with
    left padding, stopped at the tokenizer's own end-of-turn and EOS tokens. Sampled, prompt i
    draws with `seeds[i]` (default: `row_seed(generation.seed, i)`)."""
    import torch

    generation = generation or GenerationSettings()
    seeds = seeds or [row_seed(generation.seed, i) for i in range(len(prompts))]
    tokenizer.padding_side = "left"
    ensure_pad_token(tokenizer)
    stops = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    answers: list[str] = []
    for start in range(0, len(texts), BATCH):
        batch = tokenizer(
            texts[start : start + BATCH],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        width = batch["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
                **generation.generate_kwargs(seeds[start : start + BATCH], prompt_length=width),
            )
        new = out[:, width:]
        answers += [
            generation.cut(t).strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)
        ]
    return answers


def grounded_prompt(question: str, passage: str) -> str:
    return (
        "Answer the question from this passage of your own writing.\n\n"
        f"Passage: {passage[:PASSAGE_CHARS]}\n\nQuestion: {question}"
    )


class Scorer:
    """Everything the answers are compared with, prepared once."""

    def __init__(self, config: EvalConfig, embedder) -> None:
        self.corpus = config.corpus
        self.embedder = embedder
        self.corpus_vectors = embedder.encode(config.corpus)
        self.training_grams = style.ngram_set(config.training_texts)
        self.stock_phrases: list[str] = []
        self.voice: style.VoiceModel | None = None

    def learn_from_base(self, base_answers: list[str]) -> None:
        """The base model's answers to prompts other than the scored ones teach what the author
        is not: its stock phrases, and the voice classifier's other class."""
        self.stock_phrases = style.learn_stock_phrases(base_answers, self.corpus)
        self.voice = style.VoiceModel(self.corpus, [a for a in base_answers if a])

    def score(self, answers: list[str]) -> dict[str, float]:
        nonempty = [a for a in answers if a] or [""]
        voice = self.voice.score(answers) if self.voice is not None else []
        return {
            "voice_score": _mean(voice),
            "voice_similarity": _mean(style.voice_similarity(answers, self.corpus)),
            "char_similarity": _mean(style.char_similarity(answers, self.corpus)),
            "function_word_similarity": _mean(style.function_word_similarity(answers, self.corpus)),
            "style_similarity": centroid_cosine(
                self.embedder.encode(nonempty), self.corpus_vectors
            ),
            "repeat_rate": _mean([style.repeat_rate(a) for a in answers]),
            "stock_phrase_rate": _mean(
                [float(style.has_stock_phrase(a, self.stock_phrases)) for a in answers]
            ),
            "copy_rate": _mean([style.copy_rate(a, self.training_grams) for a in answers]),
            "sentence_repeat_share": _mean([float(style.repeats_a_sentence(a)) for a in answers]),
            "answer_words": _mean([float(len(a.split())) for a in answers]),
        }


def choose_generation(
    model, tokenizer, prompts: list[str], scorer: Scorer, max_new_tokens: int
) -> tuple[GenerationSettings, list[dict]]:
    """The `GRID` setting whose answers to `prompts` loop least (repeat rate within
    `MAX_REPEAT_RATE` counts as not looping), then have the highest voice similarity."""
    trials = []
    for setting in GRID:
        answers = generate_answers(model, tokenizer, prompts, max_new_tokens, setting)
        figures = scorer.score(answers)
        trials.append({"generation": setting.model_dump(mode="json")} | _rounded(figures))
    best = min(
        range(len(GRID)),
        key=lambda i: (
            max(trials[i]["repeat_rate"], MAX_REPEAT_RATE),
            -trials[i]["voice_similarity"],
        ),
    )
    return GRID[best], trials


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a sampled batch under `seed`: every row draws from its own
    generator, so rows do not share their randomness."""
    return (seed << 20) + index


def seeded_answers(
    model, tokenizer, config: EvalConfig, generation: GenerationSettings, prompts: list[str]
) -> dict[int, list[str]]:
    """Answers per seed: every seed's answers generated in one batch (prompt i under seed s
    draws with `row_seed(s, i)`), cached as one."""
    rows = [p for _ in config.seeds for p in prompts]
    seeds = [row_seed(s, i) for s in config.seeds for i in range(len(prompts))]
    answers = cached_answers(model, tokenizer, config, rows, generation, seeds)
    n = len(prompts)
    return {s: answers[k * n : (k + 1) * n] for k, s in enumerate(config.seeds)}


def cached_answers(
    model,
    tokenizer,
    config: EvalConfig,
    prompts: list[str],
    setting: GenerationSettings,
    seeds: list[int] | None = None,
) -> list[str]:
    """`generate_answers`, read from / written to the content-addressed cache when configured (a
    packaged base model's answers under the same decoding are the same in every run)."""
    # the batch is in the key: padding depends on how prompts are grouped
    payload = [
        prompts,
        setting.model_dump(mode="json"),
        config.max_new_tokens,
        config.bf16,
        BATCH,
        REPETITION_SCOPE,
    ]
    if setting.temperature > 0:
        payload += [SAMPLER, seeds]
    return cached(
        config,
        tokenizer,
        payload,
        lambda: generate_answers(model, tokenizer, prompts, config.max_new_tokens, setting, seeds),
    )


def cached(config: EvalConfig, tokenizer, payload: list, compute: Callable[[], T]) -> T:
    """`compute()`, or its JSON from the cache under the model's content marker and `payload`;
    computed every time for a model without a marker (only packaged base models carry one)."""
    key = _cache_key(tokenizer, payload)
    path = config.cache_dir / f"{key}.json" if config.cache_dir and key else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    value = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return value


def evaluate(config: EvalConfig) -> dict:
    """Rows of metrics per model label (mean and `_sd` over seeds where seeded), the decoding,
    the stock phrases learned, and the answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.settings import load_settings
    from twin.store.embeddings import Embedder

    labels = list(config.models)
    candidate, base = labels[-1], labels[0]
    scorer = Scorer(config, Embedder.from_settings(load_settings()))
    style_prompts = [p.prompt for p in config.style_prompts]
    calibration = [i for i, _ in config.heldout[:CALIBRATION_PROMPTS]]
    grid_prompts = calibration[:GRID_PROMPTS]
    grounded = config.heldout[:GROUNDED_QUESTIONS]
    grounded_prompts = [grounded_prompt(q, passage) for q, passage in grounded]
    rows: dict[str, dict] = {}
    generations: dict[str, list[dict]] = {}
    generation, trials = config.generation, []
    policy = detect()
    # the candidate first: its decoding is the one every model is scored with
    for label in [candidate, *[x for x in labels if x != candidate]]:
        path = config.models[label]
        tokenizer = AutoTokenizer.from_pretrained(path)
        ensure_pad_token(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(path, **policy.load_kwargs())
        # on the CPU, bf16 autocast where the trainer used it (about 2x faster on CPUs with
        # AVX-512 BF16); on a GPU the weights are half already. Every model is scored the same
        # way, so the comparison stays fair
        autocast = config.bf16 and not policy.cuda
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            perplexity = cached(
                config,
                tokenizer,
                ["perplexity", config.heldout, config.max_length, autocast],
                partial(answer_perplexity, model, tokenizer, config.heldout, config.max_length),
            )
            row = {"model": label, "perplexity": round(perplexity, 4)}
            if label == candidate and generation is None:
                generation, trials = choose_generation(
                    model, tokenizer, grid_prompts, scorer, config.max_new_tokens
                )
            if label == base:
                base_calibration = cached_answers(model, tokenizer, config, calibration, generation)
                scorer.learn_from_base(base_calibration)
            if label in (candidate, base):
                row["answers"] = seeded_answers(model, tokenizer, config, generation, style_prompts)
                row["grounded_answers"] = cached_answers(
                    model, tokenizer, config, grounded_prompts, generation
                )
        del model
        rows[label] = row
    for label in (base, candidate):
        row = rows[label]
        answers = row.pop("answers")
        grounded_answers = row.pop("grounded_answers")
        per_seed = [scorer.score(answers[s]) for s in config.seeds]
        for metric in per_seed[0]:
            values = [figures[metric] for figures in per_seed]
            row[metric] = round(statistics.fmean(values), 4)
            row[f"{metric}_sd"] = round(statistics.pstdev(values), 4)
        flat = [a for s in config.seeds for a in answers[s]]
        row["stylometry_similarity"] = round(
            stylometry_similarity(
                stylometry([a for a in flat if a] or [""]), stylometry(config.corpus)
            ),
            4,
        )
        row["groundedness"] = round(
            _mean(
                [
                    style.groundedness(a, p)
                    for a, (_, p) in zip(grounded_answers, grounded, strict=True)
                ]
            ),
            4,
        )
        if config.judge_url:
            from twin.training.judge import judge_answers

            row |= judge_answers(config.judge_url, config.judge_model, grounded, grounded_answers)
        generations[label] = [
            {"prompt": p.prompt, "platform": p.platform, "seed": config.seeds[0], "answer": a}
            for p, a in zip(config.style_prompts, answers[config.seeds[0]], strict=True)
        ] + [
            {"prompt": q, "kind": "grounded", "answer": a}
            for (q, _), a in zip(grounded, grounded_answers, strict=True)
        ]
    words = max(int(rows[candidate].get("answer_words", 0)), style.REPEAT_N + 1)
    author = {
        "model": "author (corpus)",
        "repeat_rate": round(style.author_repeat_rate(config.corpus, words), 4),
        "stock_phrase_rate": round(
            _mean([float(style.has_stock_phrase(c, scorer.stock_phrases)) for c in config.corpus]),
            4,
        ),
        "answer_words": round(_mean([float(len(c.split())) for c in config.corpus]), 2),
    }
    result = {
        "rows": [rows[label] for label in labels],
        "author": author,
        "candidate": candidate,
        "generation": generation.model_dump(mode="json"),
        "generation_trials": trials,
        "seeds": config.seeds,
        "style_prompts": len(style_prompts),
        "style_prompts_origin": config.style_prompts_origin,
        "stock_phrases": scorer.stock_phrases[:60],
        "generations": generations,
        "heldout_pairs": len(config.heldout),
    }
    config.output_path.parent.mkdir(parents=True, exist_ok=True)
    config.output_path.write_text(json.dumps(result, indent=2))
    return result


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in figures.items()}


def _cache_key(tokenizer, payload: list) -> str | None:
    """A digest of the model folder's weights marker and `payload`; None for a folder without
    a content marker."""
    from twin.store.base_models import MARKER

    folder = Path(getattr(tokenizer, "name_or_path", ""))
    marker = folder / MARKER
    if not marker.exists():
        return None
    return hashlib.sha256(json.dumps([marker.read_text(), *payload]).encode()).hexdigest()[:24]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    evaluate(EvalConfig.model_validate_json(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
