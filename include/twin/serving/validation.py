"""Request validation shared by the Triton models: each failure names the input and the cause."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class InvalidRequest(ValueError):
    """A request the model refuses; the message is returned to the client as a Triton error."""


@dataclass(frozen=True)
class RequestLimits:
    """Bounds a request must stay within (from the serving settings, via config parameters)."""

    max_prompt_bytes: int = 16_384
    max_prompt_tokens: int = 1536
    max_new_tokens: int = 512
    default_max_tokens: int = 96

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> RequestLimits:
        """Limits from a Triton model config's `parameters` (string values), defaults elsewhere."""
        values = {}
        for name in cls.__dataclass_fields__:
            entry = parameters.get(name)
            if entry is not None:
                raw = entry.get("string_value") if isinstance(entry, dict) else entry
                values[name] = int(raw)
        return cls(**values)


def decode_text(name: str, raw: Any, max_bytes: int) -> str:
    """A non-empty UTF-8 text input of at most `max_bytes` bytes, or `InvalidRequest`."""
    if raw is None:
        raise InvalidRequest(f"input '{name}' is required")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes):
        raise InvalidRequest(f"input '{name}' must be BYTES (UTF-8 text)")
    if len(raw) > max_bytes:
        raise InvalidRequest(f"input '{name}' is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"input '{name}' is not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.end]!r})"
        ) from None
    if "\x00" in text:
        raise InvalidRequest(f"input '{name}' contains a NUL character")
    if not text.strip():
        raise InvalidRequest(f"input '{name}' is empty")
    return text


def check_max_tokens(value: Any, limits: RequestLimits) -> int:
    """`max_tokens` as an int in [1, limits.max_new_tokens] (the default when absent)."""
    if value is None:
        return limits.default_max_tokens
    number = int(value)
    if not 1 <= number <= limits.max_new_tokens:
        raise InvalidRequest(
            f"input 'max_tokens' is {number}; it must be between 1 and {limits.max_new_tokens}"
        )
    return number


def check_temperature(value: Any) -> float:
    """`temperature` as a finite float in [0, 2] (0, greedy, when absent)."""
    if value is None:
        return 0.0
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 2.0:
        raise InvalidRequest(f"input 'temperature' is {number}; it must be a number in [0, 2]")
    return number


def check_generation(generator: Any, **overrides: Any) -> Any:
    """The generator's settings with a request's overrides (`temperature`, `top_p`,
    `repetition_penalty`, `seed`; None keeps the version's), each within its bounds, or
    `InvalidRequest` naming the input."""
    values = {}
    for name, value in overrides.items():
        if value is None:
            continue
        number = float(value)
        if not math.isfinite(number):
            raise InvalidRequest(f"input '{name}' is {number}; it must be a finite number")
        values[name] = int(number) if name == "seed" else number
    try:
        return generator.resolve(**values)
    except ValueError as exc:
        raise InvalidRequest(f"input {str(exc).removeprefix('generation setting ')}") from None


def check_prompt_tokens(prompt_tokens: int, max_tokens: int, limits: RequestLimits, context: int):
    """Refuse a prompt over the token limit, or one that leaves no room for `max_tokens`."""
    if prompt_tokens > limits.max_prompt_tokens:
        raise InvalidRequest(
            f"input 'prompt' is {prompt_tokens} tokens; the limit is {limits.max_prompt_tokens}"
        )
    if prompt_tokens + max_tokens > context:
        raise InvalidRequest(
            f"input 'prompt' ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds "
            f"the model's context of {context} tokens"
        )
