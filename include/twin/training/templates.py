"""How SFT puts its loss on the author's answers, whatever the base model's chat template.

- The template marks the assistant's turns with `{% generation %}`, or TRL ships a training
  variant of it (Llama 3, Qwen2.5, Gemma, Phi-3 and more): conversational rows with TRL's
  assistant-only loss (`ASSISTANT`).
- Otherwise, when the prompt the template renders for generation is exactly the start of the
  rendered conversation (Mistral Instruct's, for one): prompt/completion rows, the loss on the
  completion (`COMPLETION`).
- Neither: `TemplateError` naming the model, before anything trains.
"""

from __future__ import annotations

from typing import Any, Literal

ASSISTANT = "assistant"
COMPLETION = "completion"
LossMode = Literal["assistant", "completion"]
PROBE = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}]


class TemplateError(ValueError):
    """A chat template SFT cannot train on with the loss on the answers only."""


def sft_loss_mode(tokenizer: Any, model: str = "the base model") -> LossMode:
    """`ASSISTANT` or `COMPLETION` for `tokenizer`'s chat template (see the module)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = tokenizer.chat_template
    if not template:
        raise TemplateError(f"{model} has no chat template: the tokenizer must define one")
    if has_generation_markers(template):
        return ASSISTANT
    try:
        get_training_chat_template(tokenizer)
        return ASSISTANT
    except ValueError:
        pass
    if prompt_is_prefix(tokenizer):
        return COMPLETION
    raise TemplateError(
        f"{model}'s chat template has no {{% generation %}} markers, TRL ships no training "
        "variant of it, and the prompt it renders for generation is not the start of the "
        "rendered conversation, so the loss cannot be put on the answers only; add "
        "{% generation %} markers around the assistant's content to its chat template"
    )


def prompt_is_prefix(tokenizer: Any) -> bool:
    """The rendered generation prompt of a user turn starts the rendered conversation."""
    prompt = tokenizer.apply_chat_template(PROBE[:1], add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(PROBE, tokenize=False)
    return whole.startswith(prompt) and len(whole) > len(prompt)


def prompt_completion(row: dict) -> dict:
    """A `{"messages": [...]}` row as `{"prompt": [...], "completion": [last message]}`."""
    messages = row["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}
