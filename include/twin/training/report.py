"""What a reviewer reads: the evaluation table, the loss curves and the Markdown model card."""

from __future__ import annotations

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
) -> str:
    """The version's model card: what it is, what it learnt from, how it was trained and how it
    scored against its base, and what it must not be used for."""
    rows = [*evaluation.get("rows", []), evaluation.get("author", {})]
    columns = ["model", "perplexity", "style_similarity", "stylometry_similarity", "answer_words"]
    if any("judge_style" in r for r in rows):
        columns += ["judge_accuracy", "judge_style"]
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
## Evaluation (held-out documents, {evaluation.get("heldout_pairs", 0)} pairs)
Perplexity of the author's held-out answers given their prompts; style similarity is the cosine
between the centroid of the model's answers and the author's (MiniLM embeddings); stylometry
compares sentence length, punctuation, vocabulary richness and word length.

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
