"""What a reviewer reads: the evaluation table, the loss curves and the Markdown model card."""

from __future__ import annotations

import json
from pathlib import Path

from twin.training.params import TrainingParams


def loss_plot(metrics: list[dict], path: Path) -> Path:
    """Training loss per step, one line per phase (SFT, DPO)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for phase in ("sft", "dpo"):
        rows = [r for r in metrics if r.get("phase") == phase and "loss" in r]
        if rows:
            ax.plot(
                [r["step"] for r in rows],
                [r["loss"] for r in rows],
                marker=".",
                label=phase.upper(),
            )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluation_plot(rows: list[dict], path: Path) -> Path:
    """Bars of held-out perplexity and style similarity per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["model"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, key, title in zip(
        axes,
        ("perplexity", "style_similarity", "stylometry_similarity"),
        ("held-out perplexity (lower is better)", "style similarity", "stylometry similarity"),
        strict=True,
    ):
        ax.bar(labels, [r.get(key, 0) for r in rows], color=["#999", "#4a7", "#37a"][: len(rows)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# The seeded figures shown as mean ± sd, with what a reader should want of each.
VOICE_COLUMNS = (
    ("voice_score", "voice score (P author) ↑"),
    ("voice_similarity", "masked char n-grams ↑"),
    ("char_similarity", "char n-grams ↑"),
    ("function_word_similarity", "function words ↑"),
    ("style_similarity", "embedding centroid ↑"),
    ("repeat_rate", "repeated 4-grams ↓"),
    ("stock_phrase_rate", "stock phrases ↓"),
    ("copy_rate", "copied 8-grams ↓"),
    ("sentence_repeat_share", "answers repeating a sentence ↓"),
    ("answer_words", "words"),
)


def mean_sd(row: dict, metric: str) -> str:
    """`mean ± sd` of a seeded figure (`-` when the row has none)."""
    if metric not in row:
        return "-"
    sd = row.get(f"{metric}_sd")
    return f"{row[metric]:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def voice_table(evaluation: dict) -> str:
    """Base vs candidate (and the author's own figures) on the topic-held-out prompts."""
    rows = [r for r in evaluation.get("rows", []) if "voice_score" in r]
    if not rows:
        return "No topic-held-out figures (evaluated before they existed).\n"
    author = evaluation.get("author", {})
    head = "| model | " + " | ".join(title for _, title in VOICE_COLUMNS) + " | groundedness |\n"
    head += "|---" * (len(VOICE_COLUMNS) + 2) + "|\n"
    body = ""
    for row in rows:
        cells = [mean_sd(row, m) for m, _ in VOICE_COLUMNS] + [mean_sd(row, "groundedness")]
        body += f"| {row['model']} | " + " | ".join(cells) + " |\n"
    if author:
        cells = [mean_sd(author, m) for m, _ in VOICE_COLUMNS] + ["-"]
        body += f"| {author.get('model', 'author')} | " + " | ".join(cells) + " |\n"
    return head + body


def evaluation_from_tags(tags: dict[str, str]) -> dict[str, dict[str, str]]:
    """`{model: {metric: "mean ± sd"}}` from a version's `eval_<model>_<metric>` tags (what
    `twin models show` prints)."""
    out: dict[str, dict[str, str]] = {}
    metrics = sorted({m for m, _ in VOICE_COLUMNS} | {"perplexity", "groundedness"}, key=len)
    for key, value in tags.items():
        if not key.startswith("eval_") or key.endswith("_sd"):
            continue
        for metric in metrics[::-1]:
            if key.endswith(f"_{metric}"):
                model = key.removeprefix("eval_").removesuffix(f"_{metric}")
                sd = tags.get(f"{key}_sd")
                out.setdefault(model, {})[metric] = value + (f" ± {sd}" if sd else "")
                break
    return out


def model_card(
    *,
    model_name: str,
    author: str,
    dataset_version: str,
    counts: dict[str, int],
    params: TrainingParams,
    base_model_digest: str,
    tokenizer_fingerprint: str,
    config_hash: str,
    evaluation: dict,
    steps: dict[str, int],
    rejected_sources: dict[str, int] | None = None,
) -> str:
    """The version's model card: what it is, what it learnt from, how it was trained and how it
    scored against its base, and what it must not be used for."""
    rows = [*evaluation.get("rows", []), evaluation.get("author", {})]
    columns = ["model", "perplexity", "stylometry_similarity", "answer_words"]
    if any("judge_style" in r for r in rows):
        columns += ["judge_accuracy", "judge_style"]
    n_prompts, origin = evaluation.get("style_prompts", 0), evaluation.get("style_prompts_origin")
    candidate, seeds = evaluation.get("candidate", "-"), evaluation.get("seeds", [])
    hp = params.model_dump(mode="json", exclude={"force"})
    hp_lines = "".join(f"| `{k}` | {v} |\n" for k, v in hp.items())
    samples = ""
    for label, gens in evaluation.get("generations", {}).items():
        if gens:
            first = gens[0]
            samples += f"- **{label}** to _{first['prompt']}_: {first['answer'][:300]!r}\n"
    dpo_line = ""
    if params.dpo:
        dpo_line = ", then DPO with `DPOTrainer` (reference: the SFT model, adapter disabled)"
        if rejected_sources:
            dpo_line += (
                f"; rejected answers: the SFT model's own for {rejected_sources.get('own', 0)} "
                f"pairs, the dataset's (fallback) for {rejected_sources.get('fallback', 0)}"
            )
    return f"""# {model_name}: an LLM twin of {author}

A LoRA fine-tune of `{params.base_model}` that writes in the voice of {author}, trained on
their own published writing (instruction pairs, then preference pairs whose chosen answer is the
author's text).

## Lineage
| | |
|---|---|
| dataset version | `{dataset_version}` |
| samples | {", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "n/a"} |
| base model | `{params.base_model}` (source digest `{base_model_digest}`) |
| tokenizer fingerprint | `{tokenizer_fingerprint}` |
| configuration hash | `{config_hash}` |
| steps | {", ".join(f"{k.upper()}: {v}" for k, v in steps.items())} |

## Training
SFT with TRL's `SFTTrainer` (loss on the assistant's turns only){dpo_line}; DeepSpeed
ZeRO-{params.zero_stage} over {params.ranks} rank(s).

| parameter | value |
|---|---|
{hp_lines}
## Evaluation
### Voice on topics the author never wrote about
{n_prompts} topic-held-out prompts ({origin}), in the author's platforms' forms, answered by the
base and the candidate (`{candidate}`) with the same decoding, seeds {seeds}: mean ± sd over
seeds. The voice score is the probability an answer is the author's, from a classifier of her
corpus against the base's answers to other prompts, on character 2-4-grams of topic-masked text
(only function words, punctuation and word shapes are left); the masked n-gram figure is the
cosine of the same features to the corpus centroid; stock phrases are openers and clichés the
base uses and the author never does; copying is the share of 8-grams found verbatim in the
training text; groundedness is the share of an answer's content words found in the passage it
was given.

{voice_table(evaluation)}
Decoding (chosen on the held-out instructions, saved as `generation_config.json` and the
`generation.*` tags): `{json.dumps(evaluation.get("generation", {}))}`.

### Held-out documents ({evaluation.get("heldout_pairs", 0)} pairs)
Perplexity of the author's held-out answers given their prompts; stylometry compares sentence
length, punctuation, vocabulary richness and word length.

{markdown_table(rows, columns)}
Sample answers:
{samples or "- none"}
## Intended use and limits
Drafting text in the author's voice, reviewed by the author before publication. It is a small model
trained on little data: it invents facts, and its answers need the retrieval context at serving
time. Do not present its output as the author's own words without review. The training data was
PII-redacted upstream; do not fine-tune it on private messages.

## Review
New versions start with `review=pending` and the `challenger` alias; `twin models approve|reject`
records who decided, when and why. Rejected versions never deploy.
"""
