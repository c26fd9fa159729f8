"""Each chat model family's tiny model (Llama 3, Qwen2.5, Mistral, Gemma 2, with their real chat
templates) goes through SFT and DPO (one step each, through the launcher, merged), evaluation
(answer perplexity and stopped answers through its own template) and serving on the stack's
Triton, where it answers over HTTP and streams over gRPC. SmolLM2's ChatML on `tiny-llama` takes
the same path in the training pipeline tests."""

from __future__ import annotations

import math
import uuid

import pytest

from sample_author.training import snapshot as sample_author_snapshot
from tests.integration.conftest import clear_served_llm
from tests.integration.test_serving import register_version
from twin.domain.samples import Split
from twin.serving.client import generate_text, stream_text
from twin.serving.repository import load_versions, unload_version
from twin.settings import Settings
from twin.store.base_models import resolve_base_model
from twin.training.data import dpo_rows, sft_rows, write_jsonl
from twin.training.launch import model_cache, run_phase
from twin.training.params import TrainingParams
from twin.training.pipeline import phase_config

pytestmark = pytest.mark.integration

ROWS = 4


@pytest.mark.parametrize("spec", ["tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-gemma2"])
def test_family_trains_evaluates_and_answers_on_triton(
    spec: str, stack_settings: Settings, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.domain.generation import ensure_pad_token
    from twin.training.evaluate import answer_perplexity, chat_prompt, generate_answers

    settings = stack_settings.model_copy(
        update={"registered_model": f"twin-family-{spec}-{uuid.uuid4().hex[:6]}"}
    )
    base = resolve_base_model(spec, model_cache(settings))
    snapshot = sample_author_snapshot()
    params = TrainingParams(
        base_model=spec,
        ranks=1,
        zero_stage=0,
        max_steps=1,
        dpo_max_steps=1,
        batch_size=2,
        max_length=128,
        bf16=False,
        save_steps=100,
    )
    sft_data = write_jsonl(sft_rows(snapshot)[:ROWS], tmp_path / "sft.jsonl")
    sft = phase_config(params, "sft", str(base.path), sft_data, tmp_path)
    assert run_phase(settings, sft, timeout_s=300).trained
    pairs, _ = dpo_rows(snapshot, limit=ROWS)
    dpo = phase_config(
        params, "dpo", str(sft.merged_dir), write_jsonl(pairs, tmp_path / "dpo.jsonl"), tmp_path
    )
    assert run_phase(settings, dpo, timeout_s=300).trained

    folder = dpo.merged_dir
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    heldout = [(s.instruction, s.answer) for s in snapshot.instruction_split(Split.TEST)[:3]]
    assert math.isfinite(answer_perplexity(model, tokenizer, heldout, 128))
    answers = generate_answers(model, tokenizer, [q for q, _ in heldout], 8)
    assert len(answers) == len(heldout)

    version = register_version(settings, folder)
    clear_served_llm(settings)  # version 1 of an earlier module's model may still be served
    load_versions(settings, [version])
    try:
        prompt = chat_prompt(tokenizer, heldout[0][0])
        answer = generate_text(settings, prompt, max_tokens=8, version=version)
        assert answer["prompt_tokens"] == len(
            tokenizer(prompt, add_special_tokens=False)["input_ids"]
        )
        assert 0 < answer["completion_tokens"] <= 8 or answer["text"] == ""
        streamed = "".join(stream_text(settings, prompt, max_tokens=8, version=version))
        assert streamed.strip() == answer["text"].strip()
    finally:
        unload_version(settings, version)
