"""Log a merged model into an MLflow run with the transformers flavor, in a process of its own
(`python -m twin.training.log_model RUN_ID MODEL_DIR`): the caller never loads the weights.
Prints `{"model_uri": ..., "model_id": ...}` as its last line."""

from __future__ import annotations

import json
import sys

PIP_REQUIREMENTS = [
    "torch==2.13.0",
    "transformers==5.23.0",
    "safetensors",
    "tokenizers",
    "accelerate==1.15.0",
]


def log_merged_model(run_id: str, model_dir: str) -> dict[str, str]:
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.domain.devices import detect

    # logged in the dtype the merge stored (bf16 when trained in bf16), on the policy's device
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, **(detect().load_kwargs() | {"dtype": "auto"})
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=PIP_REQUIREMENTS,
        )
    return {"model_uri": info.model_uri, "model_id": info.model_id}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(log_merged_model(argv[0], argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
