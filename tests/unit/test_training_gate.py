"""The evaluation gate decides whether a tuned version may deploy, from held-out figures."""

from __future__ import annotations

from twin.training.gate import evaluation_gate


def rows(base: tuple[float, float], *tuned: tuple[str, float, float, float]) -> dict:
    out = [
        {"model": "base", "perplexity": base[0], "style_similarity": base[1], "answer_words": 30}
    ]
    for name, ppl, style, words in tuned:
        out.append(
            {"model": name, "perplexity": ppl, "style_similarity": style, "answer_words": words}
        )
    return {"rows": out}


def test_lower_perplexity_and_kept_style_passes_on_the_last_phase() -> None:
    verdict = evaluation_gate(rows((70.0, 0.55), ("sft", 49.0, 0.58, 25), ("dpo", 48.9, 0.56, 25)))
    assert verdict.passed and verdict.candidate == "dpo"
    assert "ratio 0.699" in verdict.note


def test_higher_perplexity_fails_and_says_why() -> None:
    verdict = evaluation_gate(rows((50.0, 0.55), ("sft", 40.0, 0.55, 20), ("dpo", 61.0, 0.55, 20)))
    assert not verdict.passed and verdict.candidate == "dpo"
    assert verdict.note.startswith("perplexity 61.00 vs base 50.00")


def test_a_style_collapse_fails_even_with_better_perplexity() -> None:
    verdict = evaluation_gate(rows((50.0, 0.60), ("sft", 30.0, 0.30, 20)))
    assert not verdict.passed and "style 0.300" in verdict.note


def test_a_silent_model_fails() -> None:
    verdict = evaluation_gate(rows((50.0, 0.60), ("sft", 30.0, 0.60, 0)))
    assert not verdict.passed and "no answer words" in verdict.note


def test_thresholds_are_honoured() -> None:
    figures = rows((50.0, 0.60), ("sft", 52.0, 0.60, 10))
    assert not evaluation_gate(figures).passed
    assert evaluation_gate(figures, max_perplexity_ratio=1.05).passed


def test_an_evaluation_without_a_base_row_fails() -> None:
    assert not evaluation_gate({"rows": [{"model": "sft", "perplexity": 1.0}]}).passed
