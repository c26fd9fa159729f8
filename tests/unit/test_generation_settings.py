"""A version's generation settings: bounded, saved with the model and as registry tags, and
applied the same way by the batched and the streaming generator (what twin_llm, twin_llm_stream
and shadow replay run), with request overrides held to the same bounds. Stop and pad tokens come
from each tokenizer's own chat template."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from twin.domain.generation import (
    GenerationSettings,
    end_of_turn,
    ensure_pad_token,
    stop_token_ids,
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
    "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LOOPING = GenerationSettings(temperature=0.8, top_p=0.9, repetition_penalty=1.3,
                             no_repeat_ngram_size=3, seed=7, stop=("\n\n",))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny config-built Llama (ChatML template) with LOOPING saved as its settings."""
    import shutil

    from tests.conftest import PROJECT_ROOT
    from twin.store.base_models import resolve_base_model

    cache = Path(os.environ.get("TWIN_MODEL_CACHE") or PROJECT_ROOT / ".twin" / "models")
    folder = tmp_path_factory.mktemp("tiny") / "model"
    shutil.copytree(resolve_base_model("tiny-llama", cache).path, folder)
    LOOPING.save(folder)
    return folder


def test_settings_are_bounded_and_overrides_name_the_field() -> None:
    with pytest.raises(ValueError, match="'repetition_penalty'"):
        LOOPING.override(repetition_penalty=5.0)
    with pytest.raises(ValueError, match="'temperature'"):
        LOOPING.override(temperature=-1)
    assert LOOPING.override(temperature=None) == LOOPING
    assert LOOPING.override(temperature=0).generate_kwargs(prompt_length=4)["do_sample"] is False


def _controlled_scores(settings: GenerationSettings, prompt: list[int], answer: list[int]):
    """The scores a uniform next-token distribution is left with by `settings`' repetition
    controls, after `prompt` and `answer` (one row, vocabulary of 10)."""
    import torch

    kwargs = settings.override(temperature=0).generate_kwargs(prompt_length=len(prompt))
    # the model's own generation_config.json (which holds the settings) must not apply them again
    assert (kwargs["repetition_penalty"], kwargs["no_repeat_ngram_size"]) == (1.0, 0)
    ids = torch.tensor([prompt + answer])
    scores = torch.ones(1, 10)
    for processor in kwargs["logits_processor"]:
        scores = processor(ids, scores)
    return scores[0].tolist()


def test_repetition_controls_read_the_answer_and_leave_the_prompts_passages_alone() -> None:
    """A twin answering from retrieved passages may use their words and phrases: the penalty
    and the n-gram ban apply to what the answer already said, not to the prompt."""
    prompt, answer = [1, 2, 3, 4, 1, 2], [5, 6, 7, 5, 6]
    penalised = _controlled_scores(GenerationSettings(repetition_penalty=2.0), prompt, answer)
    assert penalised == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 1.0, 1.0]
    # "5 6" was followed by 7 in the answer: 7 is banned; "1 2" ends the prompt and was followed
    # by 3 there, which stays allowed after the answer's own "1 2"
    banned = _controlled_scores(GenerationSettings(no_repeat_ngram_size=3), prompt, answer)
    assert banned == [1.0] * 7 + [float("-inf")] + [1.0] * 2
    after_prompt = _controlled_scores(GenerationSettings(no_repeat_ngram_size=3), prompt, [1, 2])
    assert after_prompt == [1.0] * 10
    neutral = GenerationSettings().generate_kwargs(prompt_length=6)
    assert "logits_processor" not in neutral


def test_settings_round_trip_through_the_model_folder_and_the_registry_tags(tiny_model) -> None:
    from transformers import GenerationConfig

    assert GenerationSettings.load(tiny_model) == LOOPING
    hf = GenerationConfig.from_pretrained(tiny_model)  # what from_pretrained models carry
    assert (hf.do_sample, hf.repetition_penalty, hf.no_repeat_ngram_size) == (True, 1.3, 3)
    assert GenerationSettings.from_tags(LOOPING.tags() | {"review": "pending"}) == LOOPING
    assert GenerationSettings.from_tags({"review": "pending"}) is None
    assert GenerationSettings.load(tiny_model.parent) == GenerationSettings()  # none saved


def test_a_hugging_face_resave_keeps_the_decoding_and_the_tags_restore_the_rest(
    tiny_model, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(tmp_path)  # as MLflow does
    resaved = GenerationSettings.load(tmp_path)
    assert resaved.repetition_penalty == 1.3 and resaved.no_repeat_ngram_size == 3
    GenerationSettings.from_tags(LOOPING.tags()).save(tmp_path)  # what serving's fetch does
    assert GenerationSettings.load(tmp_path) == LOOPING


def test_stop_and_pad_tokens_come_from_each_tokenizers_template(tiny_model) -> None:
    from transformers import AutoTokenizer

    chatml = AutoTokenizer.from_pretrained(tiny_model)
    assert end_of_turn(chatml) == "<|im_end|>"
    assert chatml.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(chatml)

    llama3 = AutoTokenizer.from_pretrained(tiny_model)
    llama3.add_special_tokens(
        {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )
    llama3.chat_template = LLAMA3_TEMPLATE
    llama3.pad_token = None
    assert end_of_turn(llama3) == "<|eot_id|>"
    assert llama3.convert_tokens_to_ids("<|eot_id|>") in stop_token_ids(llama3)
    ensure_pad_token(llama3)
    assert llama3.pad_token == llama3.eos_token


def test_batched_and_streamed_answers_apply_the_same_settings(tiny_model) -> None:
    from twin.serving.generation import Generator
    from twin.serving.validation import InvalidRequest, check_generation

    generator = Generator(tiny_model, threads=1)
    assert generator.settings == LOOPING
    prompt = generator.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Ship the boring version first?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    first = generator.generate([prompt], [24])[0].text
    assert generator.generate([prompt], [24])[0].text == first  # the version's seed
    assert "".join(generator.stream(prompt, 24)) == first
    reseeded = check_generation(generator, seed=8, temperature=None)
    assert reseeded.seed == 8 and reseeded.repetition_penalty == 1.3
    assert "".join(generator.stream(prompt, 24, settings=reseeded)) == (
        generator.generate([prompt], [24], settings=reseeded)[0].text
    )
    with pytest.raises(InvalidRequest, match="input 'repetition_penalty'"):
        check_generation(generator, repetition_penalty=9.0)
    with pytest.raises(InvalidRequest, match="input 'top_p'"):
        check_generation(generator, top_p=float("nan"))


def test_a_stop_sequence_ends_the_answer_in_both_paths(tiny_model) -> None:
    from twin.serving.generation import Generator

    generator = Generator(tiny_model, threads=1)
    prompt = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    free = generator.resolve(temperature=0.0).model_copy(update={"stop": ()})
    text = generator.generate([prompt], [16], settings=free)[0].text
    assert len(text) > 8, text
    stop = text[6:8]
    cut = free.model_copy(update={"stop": (stop,)})
    expected = text[: text.index(stop)]
    assert expected and len(expected) < len(text)
    assert generator.generate([prompt], [16], settings=cut)[0].text == expected
    assert "".join(generator.stream(prompt, 16, settings=cut)) == expected
    assert json.loads(cut.tags()["generation.stop"]) == [stop]


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 0.9), (0.5, 0.9), (1.3, 0.6), (0.8, 1.0)])
def test_the_sampler_draws_from_hugging_faces_distribution(temperature, top_p) -> None:
    """Temperature, top-k 50 and top-p as Hugging Face's warpers apply them (what sampled
    `generate` did before), including rows where repetition controls removed tokens."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from twin.domain.generation import TOP_K, Sampler

    torch.manual_seed(3)
    scores = torch.randn(6, 4096) * 4
    scores[1, torch.randperm(4096)[:4060]] = float("-inf")  # fewer than top-k tokens left
    scores[3, 17] = 40.0  # one token holds nearly all the mass
    warped = scores.clone()
    for warper in (
        TemperatureLogitsWarper(temperature),
        TopKLogitsWarper(TOP_K),
        TopPLogitsWarper(top_p),
    ):
        warped = warper(None, warped)
    expected = torch.softmax(warped, dim=-1)
    sampler = Sampler(temperature, top_p)
    probs, ids = sampler.distribution(scores)
    got = torch.zeros_like(expected).scatter_(-1, ids, probs)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)

    drawn = sampler(None, scores)
    token = drawn.argmax(-1)
    assert (drawn.isfinite().sum(-1) == 1).all()  # one token left per row: greedy takes it
    assert (expected.gather(-1, token[:, None]) > 0).all()
    assert token[3] == 17


def test_each_row_samples_with_its_own_seed_whatever_shares_its_batch(tiny_model) -> None:
    """A request's text depends on its prompt and seed, not on its batch mates, so twin_llm
    batches requests that differ only in their seed."""
    from twin.serving.generation import Generator

    generator = Generator(tiny_model, threads=1)
    prompt = "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    settings = LOOPING.override(stop=(), temperature=1.5, top_p=1.0)
    kwargs = settings.generate_kwargs(prompt_length=1)
    assert kwargs["do_sample"] is False and kwargs["top_k"] is None  # the sampler draws
    alone = {
        seed: generator.generate([prompt], [16], settings=settings.override(seed=seed))[0].text
        for seed in (1, 2, 3, 4)
    }
    assert len(set(alone.values())) > 1
    together = generator.generate([prompt] * 4, [16] * 4, settings=settings, seeds=[1, 2, 3, 4])
    assert [g.text for g in together] == [alone[seed] for seed in (1, 2, 3, 4)]
    again = generator.generate([prompt] * 2, [16] * 2, settings=settings.override(seed=3))
    assert [g.text for g in again] == [alone[3]] * 2
