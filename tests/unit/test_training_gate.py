"""The evaluation gate decides whether a tuned version may deploy, from held-out figures: relative
to its base, and absolutely (loops and a voice no better than the base's are refused whatever a
champion does)."""

from __future__ import annotations

from twin.training.gate import evaluation_gate


def row(name: str, ppl: float, style: float, words: float, **extra: float) -> dict:
    figures = {"voice_score": 0.40, "voice_score_sd": 0.01, "repeat_rate": 0.01}
    figures |= {"voice_score": 0.50} if name != "base" else {}
    return {
        "model": name,
        "perplexity": ppl,
        "style_similarity": style,
        "answer_words": words,
        **(figures | extra),
    }


def rows(base: tuple[float, float], *tuned: tuple[str, float, float, float]) -> dict:
    out = [row("base", base[0], base[1], 30)]
    out += [row(*t) for t in tuned]
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


def test_a_looping_version_is_refused_whatever_its_other_figures() -> None:
    # better perplexity and embedding style than its base, a voice gain: the relative checks a
    # looping champion sets would all pass; a repeated 4-gram rate of 0.3 refuses it
    figures = {"rows": [row("base", 60.0, 0.50, 30), row("dpo", 40.0, 0.55, 60, repeat_rate=0.3)]}
    verdict = evaluation_gate(figures)
    assert not verdict.passed
    assert "repeated 4-gram rate 0.300 (max 0.05" in verdict.note


def test_a_voice_no_better_than_the_base_beyond_the_seed_spread_is_refused() -> None:
    # a gain of 0.02 with seed sds of 0.015 each: within the spread, so not a voice gain
    base = row("base", 60.0, 0.50, 30, voice_score=0.40, voice_score_sd=0.015)
    tuned = row("dpo", 40.0, 0.55, 30, voice_score=0.42, voice_score_sd=0.015)
    verdict = evaluation_gate({"rows": [base, tuned]})
    assert not verdict.passed and "needs > 0.030" in verdict.note
    tuned["voice_score"] = 0.45
    assert evaluation_gate({"rows": [base, tuned]}).passed
    assert not evaluation_gate({"rows": [base, tuned]}, min_voice_gain=0.15).passed


def test_an_evaluation_without_voice_figures_is_refused() -> None:
    figures = {
        "rows": [
            {"model": "base", "perplexity": 60.0, "style_similarity": 0.5, "answer_words": 30},
            {"model": "sft", "perplexity": 40.0, "style_similarity": 0.6, "answer_words": 30},
        ]
    }
    verdict = evaluation_gate(figures)
    assert not verdict.passed and "no voice or repetition figures" in verdict.note


def test_the_floors_can_be_reported_without_deciding_for_models_that_cannot_write() -> None:
    figures = {"rows": [row("base", 60.0, 0.50, 30), row("dpo", 40.0, 0.55, 60, repeat_rate=0.3)]}
    verdict = evaluation_gate(figures, absolute=False)
    assert verdict.passed and "[not enforced]" in verdict.note
