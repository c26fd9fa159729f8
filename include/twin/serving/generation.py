"""Text generation with a merged causal LM: batched (left-padded) and streaming.

The same `Generator` runs inside Triton's `twin_llm` models and in-process (the benchmark's
baseline), so both measure the same code path. It decodes with the version's own generation
settings (`generation_config.json`, chosen at evaluation: repetition penalty, no-repeat n-gram
size, temperature / top-p with a seed, stop sequences), which a request may override within the
settings' bounds; it stops at the tokenizer's own end-of-turn and EOS tokens. Requests sharing
settings are padded into one `generate` call; each row is cut at its own `max_tokens`, at the
first stop token and at the first stop sequence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from twin.domain.devices import DevicePolicy, cpu_policy, use_cpu_threads
from twin.domain.generation import GenerationSettings, ensure_pad_token, stop_token_ids


@dataclass(frozen=True)
class Generation:
    """One completion and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Generator:
    """A tokenizer and a causal LM loaded once from a Hugging Face folder, on the policy's device
    in its dtype (CPU float32 by default; half precision on a GPU)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int | None = None,
        policy: DevicePolicy | None = None,
        device_index: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        use_cpu_threads(threads)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        ensure_pad_token(self.tokenizer)
        self.policy = policy or cpu_policy()
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, **self.policy.load_kwargs(device_index)
        )
        self.model.eval()
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config)
        self.settings = GenerationSettings.load(Path(model_dir))
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` encodes to (no special tokens added)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def resolve(self, temperature: float | None = None, **overrides: object) -> GenerationSettings:
        """The version's settings with a request's overrides (None: keep); ValueError when an
        override is out of bounds."""
        return self.settings.override(temperature=temperature, **overrides)

    def generate(
        self,
        prompts: Sequence[str],
        max_tokens: Sequence[int],
        temperature: float | None = None,
        settings: GenerationSettings | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        """Complete every prompt in one padded batch; row i stops after `max_tokens[i]` tokens.
        `settings` (default: the version's, with `temperature` if given) decide the decoding;
        row i samples with `seeds[i]` (default: the settings' seed for every row)."""
        torch = self.torch
        settings = settings or self.resolve(temperature)
        batch = self.tokenizer(
            list(prompts), return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.model.device)
        width = batch["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                **batch,
                max_new_tokens=max(max_tokens),
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.stop_ids,
                **settings.generate_kwargs(seeds, prompt_length=width),
            )
        results = []
        for row, limit, mask in zip(out, max_tokens, batch["attention_mask"], strict=True):
            tokens = row[width:].tolist()[:limit]
            for i, token in enumerate(tokens):
                if token in self.stop_ids:
                    tokens = tokens[:i]
                    break
            text = settings.cut(self.tokenizer.decode(tokens, skip_special_tokens=True))
            results.append(Generation(text, int(mask.sum()), len(tokens)))
        return results

    def stream(
        self,
        prompt: str,
        max_tokens: int,
        temperature: float | None = None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[str]:
        """Yield the completion of `prompt` piece by piece as tokens are generated, with the
        same settings as `generate`; a stop sequence ends the stream before it is sent."""
        from transformers import TextIteratorStreamer

        torch = self.torch
        settings = settings or self.resolve(temperature)
        batch = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(
            self.model.device
        )
        width = batch["input_ids"].shape[1]
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(
                        **batch,
                        max_new_tokens=max_tokens,
                        pad_token_id=self.tokenizer.pad_token_id,
                        eos_token_id=self.stop_ids,
                        streamer=streamer,
                        **settings.generate_kwargs(prompt_length=width),
                    )
            except BaseException as exc:  # surfaced to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        sent = ""
        for piece in streamer:
            whole = sent + piece
            kept = settings.cut(whole)
            if len(kept) < len(whole):  # a stop sequence: send what precedes it, then stop
                if kept[len(sent) :]:
                    yield kept[len(sent) :]
                break
            if piece:
                yield piece
            sent = whole
        worker.join()
        if failure:
            raise failure[0]


def load_version_generator(
    version_dir: Path, version: str, policy: DevicePolicy | None = None, device_index: int = 0
) -> Generator:
    """The generator of a Triton version folder, after checking its tokenizer against the
    fingerprint the registered version recorded; ValueError on a mismatch (refuse to load)."""
    import json

    from twin.domain.models import tokenizer_fingerprint

    record = json.loads((version_dir / "version.json").read_text())
    generator = Generator(version_dir / "hf", policy=policy, device_index=device_index)
    found = tokenizer_fingerprint(generator.tokenizer)
    expected = record.get("tokenizer_fingerprint")
    if expected and found != expected:
        raise ValueError(
            f"tokenizer fingerprint mismatch for version {version}: files give "
            f"{found}, the registered version says {expected}; refusing to load"
        )
    return generator
