"""The evaluation gate: whether a tuned version is good enough to deploy, and why (or why not).

The candidate is the last phase evaluated (DPO when it ran, else SFT), compared with the base
model on the same prompts, decoding and seeds. It holds absolutely, whatever any champion does:
- its voice score (the probability its answers are the author's, `twin.training.style`) on the
  author's topic-held-out prompts must beat the base's by more than
  the seed spread (the two sds added) and by at least `min_voice_gain` (relative);
- its repeated 4-gram rate must stay within `max_repeat_rate` (a looping model is refused);
- its perplexity of the author's held-out answers must not rise above `max_perplexity_ratio` x
  the base's, and its embedding style similarity must not fall by more than `max_style_drop`;
- it must answer at all.
The verdict becomes the version's `evaluation_passed` tag, which deployment's preflight reads.
"""

from __future__ import annotations

from dataclasses import dataclass

VOICE = "voice_score"
REPEAT = "repeat_rate"


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    candidate: str
    reasons: tuple[str, ...]

    @property
    def note(self) -> str:
        return "; ".join(self.reasons)


def evaluation_gate(
    evaluation: dict,
    max_perplexity_ratio: float = 1.0,
    max_style_drop: float = 0.1,
    max_repeat_rate: float = 0.05,
    min_voice_gain: float = 0.0,
    absolute: bool = True,
) -> GateVerdict:
    """The verdict on the evaluation's rows (`model`, `perplexity`, `voice_score` and its
    `_sd`, `repeat_rate`, `style_similarity`, `answer_words`). `absolute=False` reports the voice
    and loop figures without letting them decide (only for chain tests on tiny models that
    cannot write)."""
    rows = {row["model"]: row for row in evaluation.get("rows", [])}
    base = rows.get("base")
    tuned = [name for name in rows if name != "base"]
    if base is None or not tuned:
        return GateVerdict(False, "", ("evaluation has no base and tuned rows to compare",))
    name = evaluation.get("candidate") or tuned[-1]
    candidate = rows[name]
    failures, passes = [], []

    def check(ok: bool, line: str) -> None:
        (passes if ok else failures).append(line)

    def floor(ok: bool, line: str) -> None:
        check(ok or not absolute, line if absolute or ok else f"{line} [not enforced]")

    if VOICE not in candidate or VOICE not in base or REPEAT not in candidate:
        floor(False, "evaluation has no voice or repetition figures (re-evaluate the version)")
    else:
        gain = candidate[VOICE] - base[VOICE]
        spread = candidate.get(f"{VOICE}_sd", 0.0) + base.get(f"{VOICE}_sd", 0.0)
        needed = max(spread, min_voice_gain * base[VOICE])
        floor(
            gain > needed,
            f"voice {candidate[VOICE]:.3f} vs base {base[VOICE]:.3f} (gain {gain:+.3f}, "
            f"needs > {needed:.3f}: seed spread {spread:.3f}, min gain {min_voice_gain:.0%})",
        )
        floor(
            candidate[REPEAT] <= max_repeat_rate,
            f"repeated 4-gram rate {candidate[REPEAT]:.3f} (max {max_repeat_rate}, "
            f"base {base.get(REPEAT, float('nan')):.3f})",
        )
    ratio = candidate["perplexity"] / base["perplexity"] if base["perplexity"] else float("inf")
    check(
        ratio <= max_perplexity_ratio,
        f"perplexity {candidate['perplexity']:.2f} vs base {base['perplexity']:.2f} "
        f"(ratio {ratio:.3f}, max {max_perplexity_ratio})",
    )
    if "style_similarity" in candidate and "style_similarity" in base:
        drop = base["style_similarity"] - candidate["style_similarity"]
        check(
            drop <= max_style_drop,
            f"style {candidate['style_similarity']:.3f} vs base {base['style_similarity']:.3f} "
            f"(drop {drop:.3f}, max {max_style_drop})",
        )
    if candidate.get("answer_words", 0) <= 0:
        failures.append("the tuned model produced no answer words")
    return GateVerdict(not failures, name, tuple(failures or passes))
