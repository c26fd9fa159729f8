"""Model versions: the contract between training (registers), serving (loads) and deployment.

MLflow is the source of truth. A registered version of `settings.registered_model` ("twin-llm")
carries the tags below; the merged model is logged with the transformers flavor (loadable with
`mlflow.transformers.load_model(uri, return_type="components")`), the LoRA adapter as plain
artifacts under `ADAPTER_ARTIFACT`. Aliases, not stages, mark the champion and the challenger.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"

ADAPTER_ARTIFACT = "adapter"
MODEL_CARD_ARTIFACT = "model_card.md"
EVALUATION_ARTIFACT = "evaluation"
DEEPSPEED_ARTIFACT = "deepspeed"


class ReviewState(StrEnum):
    """The `review` tag of a model version; rejected versions never deploy."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class VersionTag(StrEnum):
    """Tag keys on a registered model version (and shown in the MLflow UI)."""

    REVIEW = "review"
    REVIEWED_BY = "reviewed_by"
    REVIEWED_AT = "reviewed_at"
    REVIEW_NOTE = "review_note"
    DATASET_VERSION = "dataset_version"
    BASE_MODEL = "base_model"
    TOKENIZER_FINGERPRINT = "tokenizer_fingerprint"
    CONFIG_HASH = "config_hash"
    EVALUATION_PASSED = "evaluation_passed"
    EVALUATION_NOTE = "evaluation_note"
    DEPLOYMENT = "deployment"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short, stable digest of what a tokenizer turns text into: vocabulary, special tokens and
    chat template. Two tokenizers with the same fingerprint encode every text identically."""
    vocab = tokenizer.get_vocab()
    payload = {
        "vocab": sorted(vocab.items(), key=lambda kv: kv[1]),
        "special": sorted(map(str, tokenizer.all_special_tokens)),
        "template": getattr(tokenizer, "chat_template", None) or "",
        "class": type(tokenizer).__name__.removesuffix("Fast"),
    }
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
