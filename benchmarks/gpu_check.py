"""GPU check, one GPU, inside 10 minutes: SFT then DPO with LoRA and with 4-bit QLoRA under
ZeRO-2 (each phase ends with its merge), evaluation of the result (answer perplexity, greedy
answers stopped at the template's end of turn) and a Triton-free batched generation in the
device policy's half precision (bf16 where supported). Prints tokens/s, peak GPU memory and
model FLOPs utilisation (training: 6 x parameters x tokens/s; generation: 2 x parameters x
tokens/s; over --peak-tflops, the GPU's dense bf16 peak: 989 for an H100 SXM).

On a machine without a usable CUDA GPU it refuses before loading anything (exit status 2) and
says why; QLoRA needs bitsandbytes (`pip install -r requirements-gpu.txt`).

    python benchmarks/gpu_check.py [--model smollm2-135m|tiny-llama|PATH] [--steps 20]
                                   [--budget-s 600] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REFUSED = 2


def refusal() -> str | None:
    """Why this machine cannot run the check (None: it can)."""
    from twin.domain.devices import DeviceError, detect

    try:
        policy = detect()
    except DeviceError as exc:
        return str(exc)
    if not policy.cuda:
        return (
            "no CUDA GPU: torch.cuda.is_available() is false (or TWIN_DEVICE=cpu); this check "
            "measures training and generation on a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs bitsandbytes: pip install -r requirements-gpu.txt"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=20, help="SFT and DPO steps per variant")
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    reason = refusal()
    if reason:
        print(f"gpu_check refused: {reason}", file=sys.stderr)
        return REFUSED
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="twin-gpu-check-"))
    try:
        rows = run(args, work, deadline=began + args.budget_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'step':<34}{'tokens/s':>10}{'peak GiB':>10}{'MFU':>8}{'wall s':>9}")
    for r in rows:
        mfu = f"{r['mfu']:.3f}" if r.get("mfu") is not None else "-"
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "-"
        tokens = f"{r['tokens_s']:.0f}" if r.get("tokens_s") is not None else "-"
        print(f"{r['step']:<34}{tokens:>10}{peak:>10}{mfu:>8}{r['wall_s']:>9.1f}")
    print(f"total {time.perf_counter() - began:.0f} s")
    print(json.dumps(rows))
    return 0


def run(args, work: Path, deadline: float) -> list[dict]:
    from sample_author.training import snapshot as sample_author_snapshot
    from twin.domain.devices import detect
    from twin.settings import Settings, default_home
    from twin.store.base_models import resolve_base_model
    from twin.training.data import dpo_rows, read_jsonl, sft_rows, write_jsonl
    from twin.training.launch import run_phase
    from twin.training.params import TrainingParams
    from twin.training.pipeline import phase_config

    policy = detect()
    cache = Path(default_home()) / "models"
    base = resolve_base_model(args.model, cache)
    settings = Settings(TWIN_HOME=work, model_cache_dir=cache)
    snapshot = sample_author_snapshot()
    sft_data = write_jsonl(sft_rows(snapshot), work / "sft.jsonl")
    pairs, _ = dpo_rows(snapshot)  # the dataset's rejected sides: no generation before DPO
    dpo_data = write_jsonl(pairs, work / "dpo.jsonl")
    params_count = parameters(base.path)
    rows: list[dict] = []
    merged = None
    for variant, qlora in (("LoRA", False), ("QLoRA 4-bit", True)):
        params = TrainingParams(
            base_model=args.model,
            ranks=1,
            zero_stage=2,
            max_steps=args.steps,
            dpo_max_steps=args.steps,
            save_steps=10_000,
            qlora=qlora,
            bf16=True,
        )
        model_path = str(base.path)
        for phase, data in (("sft", sft_data), ("dpo", dpo_data)):
            config = phase_config(params, phase, model_path, data, work / variant.split()[0])
            start = time.perf_counter()
            run_phase(settings, config, timeout_s=max(deadline - start, 1.0))
            wall = time.perf_counter() - start
            metrics = [r for r in read_jsonl(config.metrics_path) if "num_tokens" in r]
            tokens_s = throughput(metrics)
            peak = config.output_dir / "peak_memory.json"
            rows.append(
                {
                    "step": f"{variant} {phase.upper()} + merge, ZeRO-2",
                    "tokens_s": tokens_s,
                    "peak_gib": json.loads(peak.read_text())["peak_bytes"] / 2**30
                    if peak.exists()
                    else None,
                    "mfu": 6 * params_count * tokens_s / (args.peak_tflops * 1e12)
                    if tokens_s
                    else None,
                    "wall_s": wall,
                }
            )
            model_path = str(config.merged_dir)
        merged = Path(model_path)
    assert merged is not None
    rows += evaluate_and_generate(merged, snapshot, policy, params_count, args)
    return rows


def evaluate_and_generate(merged: Path, snapshot, policy, params_count: int, args) -> list[dict]:
    """Perplexity and stopped greedy answers on held-out pairs (the evaluation's own functions),
    then a batched generation through the serving code path, both in the policy's dtype."""
    import torch

    from twin.domain.samples import Split
    from twin.serving.generation import Generator
    from twin.training.evaluate import answer_perplexity, chat_prompt, generate_answers

    heldout = [(s.instruction, s.answer) for s in snapshot.instruction_split(Split.TEST)][:16]
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generator = Generator(merged, policy=policy)
    perplexity = answer_perplexity(generator.model, generator.tokenizer, heldout, 256)
    answers = generate_answers(
        generator.model, generator.tokenizer, [q for q, _ in heldout[:8]], args.max_new_tokens
    )
    rows = [
        {
            "step": f"evaluation (perplexity {perplexity:.2f}, {len(answers)} answers)",
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "wall_s": time.perf_counter() - start,
        }
    ]
    prompts = [chat_prompt(generator.tokenizer, q) for q, _ in heldout]
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = generator.generate(prompts, [args.max_new_tokens] * len(prompts))
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    tokens_s = sum(g.completion_tokens for g in out) / wall
    rows.append(
        {
            "step": f"generation {policy.dtype}, batch {len(prompts)}",
            "tokens_s": tokens_s,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "mfu": 2 * params_count * tokens_s / (args.peak_tflops * 1e12),
            "wall_s": wall,
        }
    )
    return rows


def throughput(metrics: list[dict]) -> float | None:
    """Trained tokens/s between the first and the last logged step (start-up left out)."""
    if len(metrics) < 2:
        return None
    first, last = metrics[0], metrics[-1]
    seconds = last["time"] - first["time"]
    return (last["num_tokens"] - first["num_tokens"]) / seconds if seconds > 0 else None


def parameters(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in path.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                count = 1
                for dim in f.get_slice(name).get_shape():
                    count *= dim
                total += count
    return total


if __name__ == "__main__":
    sys.exit(main())
