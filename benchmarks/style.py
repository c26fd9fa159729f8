"""Does training move the twin's voice? Train SFT (+ DPO) on the sample author's snapshot with the
given parameters, then evaluate base vs candidate on her topic-held-out prompts (3 seeds, the
candidate's chosen decoding), exactly as twin_training does, and print the table.

    python benchmarks/style.py NAME ['{"learning_rate": 6e-4, ...}'] [--home DIR]

Parameters start from the demo's (SmolLM2-135M, 30 SFT + 15 DPO steps, 2 ranks); the JSON
overrides any TrainingParams field. Runs resume from `<home>/runs/NAME` (delete it to retrain).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from twin.settings import Settings, default_home
from twin.store.base_models import resolve_base_model
from twin.training.params import TrainingParams
from twin.training.pipeline import evaluate_phases, train_phases
from twin.training.report import voice_table

DEMO = {"base_model": "smollm2-135m", "max_steps": 30, "dpo_max_steps": 15, "ranks": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="?", default="{}")
    parser.add_argument("--home", type=Path, default=Path(default_home()) / "bench-style")
    args = parser.parse_args()

    from sample_author.training import snapshot as sample_snapshot

    cache = Path(default_home()) / "models"
    settings = Settings(TWIN_HOME=args.home, model_cache_dir=cache)
    params = TrainingParams(**(DEMO | json.loads(args.overrides)))
    snapshot = sample_snapshot()
    base = resolve_base_model(params.base_model, cache)
    folder = args.home / "runs" / args.name
    started = time.perf_counter()
    phases = train_phases(settings, params, snapshot, base, folder)
    trained = time.perf_counter()
    evaluation = evaluate_phases(settings, params, snapshot, base, phases, folder)
    done = time.perf_counter()
    rows = {r["model"]: r for r in evaluation["rows"]}
    base_row, cand = rows["base"], rows[evaluation["candidate"]]
    gain = cand["voice_similarity"] / base_row["voice_similarity"] - 1
    print(f"{args.name}: train {trained - started:.0f} s, evaluate {done - trained:.0f} s")
    print(f"decoding: {json.dumps(evaluation['generation'])}")
    print(voice_table(evaluation))
    print(f"voice gain over base: {gain:+.1%}")


if __name__ == "__main__":
    main()
