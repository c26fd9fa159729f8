"""Every chat model family's template is scored and stopped right: tiny config-built models of
Llama 3, Qwen2.5, Mistral and Gemma 2 (and SmolLM2's ChatML on `tiny-llama`), each with its
family's real chat template, special tokens and pad handling.

The answer perplexity is checked against a hand computation: the prompt written out by hand in
the family's format, the answer's tokens followed by the family's own end-of-turn token, and
the mean negative log-likelihood of those tokens read off the model's logits."""

from __future__ import annotations

import math

import pytest

from twin.domain.generation import end_of_turn, ensure_pad_token, stop_token_ids
from twin.store.base_models import DEFAULT_SYSTEM, resolve_base_model
from twin.training.evaluate import answer_perplexity, generate_answers
from twin.training.templates import (
    ASSISTANT,
    COMPLETION,
    TemplateError,
    prompt_completion,
    sft_loss_mode,
)

QUESTION = "Why test pipelines?"
ANSWER = "Data"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# (prompt as the family writes it, its end-of-turn token, SFT's loss mode)
FAMILIES = {
    "tiny-llama": (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_end|>",
        ASSISTANT,
    ),
    "tiny-llama3": (
        f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{QUESTION}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|eot_id|>",
        ASSISTANT,
    ),
    "tiny-qwen2": (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n",
        "<|im_end|>",
        ASSISTANT,
    ),
    "tiny-mistral": (f"<s>[INST] {QUESTION} [/INST]", "</s>", COMPLETION),
    "tiny-gemma2": (
        f"<bos><start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n",
        "<end_of_turn>",
        ASSISTANT,
    ),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


def load(spec: str, cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_base_model(spec, cache).path
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    return tokenizer, model.eval()


@pytest.mark.parametrize("spec", list(FAMILIES))
def test_perplexity_and_stops_follow_each_familys_template(spec: str, cache) -> None:
    import torch

    prompt, end, mode = FAMILIES[spec]
    tokenizer, model = load(spec, cache)
    end_id = tokenizer.convert_tokens_to_ids(end)

    # by hand: the prompt's tokens, then the answer's and the end-of-turn token
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = [*tokenizer(ANSWER, add_special_tokens=False)["input_ids"], end_id]
    assert len(answer_ids) == 2  # a one-token answer and its end of turn
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    nll = -sum(
        float(logprobs[len(prompt_ids) - 1 + i, token]) for i, token in enumerate(answer_ids)
    ) / len(answer_ids)
    expected = math.exp(nll)

    assert end_of_turn(tokenizer) == end
    assert answer_perplexity(model, tokenizer, [(QUESTION, ANSWER)], 256) == pytest.approx(
        expected, rel=1e-4
    )
    # stops: the template's end of turn and the EOS, whatever the family calls them
    stops = stop_token_ids(tokenizer, model.generation_config)
    assert end_id in stops and tokenizer.eos_token_id in stops
    # padding: a family without a pad token (Llama 3, Mistral) pads with its EOS; batched
    # greedy answers equal the answers generated one at a time
    ensure_pad_token(tokenizer)
    assert tokenizer.pad_token is not None
    questions = [QUESTION, "Write a LinkedIn post about reliable pipelines and tests."]
    batched = generate_answers(model, tokenizer, questions, 6)
    alone = [generate_answers(model, tokenizer, [q], 6)[0] for q in questions]
    assert batched == alone
    assert sft_loss_mode(tokenizer, spec) == mode


def test_completion_rows_and_a_template_neither_mode_can_train(cache) -> None:
    tokenizer, _ = load("tiny-mistral", cache)
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert prompt_completion(row) == {
        "prompt": [{"role": "user", "content": "q"}],
        "completion": [{"role": "assistant", "content": "a"}],
    }
    # the answers are rendered before the questions: no prefix, no markers, no TRL variant
    tokenizer.chat_template = (
        "{% for m in messages|reverse %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    with pytest.raises(TemplateError, match="tiny-mistral's chat template has no"):
        sft_loss_mode(tokenizer, "tiny-mistral")
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="has no chat template"):
        sft_loss_mode(tokenizer, "tiny-mistral")


@pytest.mark.parametrize("spec", list(FAMILIES))
def test_twin_rags_prompt_carries_its_instructions_in_every_familys_template(
    spec: str, cache
) -> None:
    """twin_rag and the deployment's shadow replay build prompts with a system message; Gemma's
    and Mistral's templates refuse one, so its text leads the user turn there."""
    from twin.rag.prompt import SYSTEM_PROMPT, build_prompt

    tokenizer, _ = load(spec, cache)
    plan = build_prompt(tokenizer, QUESTION, [], author="Ines Okafor", context_tokens=100)
    system = SYSTEM_PROMPT.format(author="Ines Okafor")
    assert system in plan.prompt
    assert plan.prompt.index(system) < plan.prompt.index(f"Question: {QUESTION}")
    # it ends as the family's own prompt does after the question: at the assistant's turn
    assert plan.prompt.endswith(FAMILIES[spec][0].split(QUESTION, 1)[1])
