"""The evaluation gate: whether a tuned version is good enough to deploy, and why (or why not).

The candidate is the last phase evaluated (DPO when it ran, else SFT), compared with the base
model on the same held-out split: its perplexity of the author's held-out answers must not rise
above `max_perplexity_ratio` x the base's, its style similarity must not fall by more than
`max_style_drop`, and it must answer at all. The verdict becomes the version's
`evaluation_passed` tag, which deployment's preflight reads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    candidate: str
    reasons: tuple[str, ...]

    @property
    def note(self) -> str:
        return "; ".join(self.reasons)


def evaluation_gate(
    evaluation: dict, max_perplexity_ratio: float = 1.0, max_style_drop: float = 0.1
) -> GateVerdict:
    """The verdict on the evaluation's rows (`model`, `perplexity`, `style_similarity`, ...)."""
    rows = {row["model"]: row for row in evaluation.get("rows", [])}
    base = rows.get("base")
    tuned = [name for name in rows if name != "base"]
    if base is None or not tuned:
        return GateVerdict(False, "", ("evaluation has no base and tuned rows to compare",))
    name = tuned[-1]
    candidate = rows[name]
    failures, passes = [], []
    ratio = candidate["perplexity"] / base["perplexity"] if base["perplexity"] else float("inf")
    line = (
        f"perplexity {candidate['perplexity']:.2f} vs base {base['perplexity']:.2f} "
        f"(ratio {ratio:.3f}, max {max_perplexity_ratio})"
    )
    (passes if ratio <= max_perplexity_ratio else failures).append(line)
    drop = base["style_similarity"] - candidate["style_similarity"]
    line = (
        f"style {candidate['style_similarity']:.3f} vs base {base['style_similarity']:.3f} "
        f"(drop {drop:.3f}, max {max_style_drop})"
    )
    (passes if drop <= max_style_drop else failures).append(line)
    if candidate.get("answer_words", 0) <= 0:
        failures.append("the tuned model produced no answer words")
    return GateVerdict(not failures, name, tuple(failures or passes))
