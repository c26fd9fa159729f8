"""Training throughput: tokens/s of LoRA SFT for 1 vs 2 ranks and ZeRO-2 vs ZeRO-3, in one run.

Each configuration trains the same model on the same sample-author rows for `--steps` optimiser
steps through the real launcher (torchrun ranks, gloo on CPU, NCCL on GPU). Throughput is the
trained tokens (TRL's `num_tokens`, all ranks) between the end of step `--warmup` and the last
step, over that wall time, so process start, model load and op compilation are left out.
Ratios are against the first configuration, measured in the same run. A configuration is
`RANKSxSTAGE` (`gc` appended: with gradient checkpointing), or `bare`: a plain torch + peft loop
in this process (the same LoRA, rows, global batch and precision, AdamW, no Trainer, no
DeepSpeed, every core to one process), the framework's overhead baseline. On a GPU it also
prints peak memory and model FLOPs utilisation (6 x parameters x tokens / time / peak FLOP/s
given by --peak-tflops).

    python benchmarks/train.py [--model tiny-llama|smollm2-135m|PATH] [--steps 12] [--warmup 3]
                               [--max-length 256] [--batch 2] [--configs bare,1x2,2x2,2x2gc,2x3]
                               [--qlora] [--scale 1]

`--scale` multiplies `--steps` (the warm-up steps stay as given).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from sample_author.training import snapshot as sample_author_snapshot
from twin.domain.generation import ensure_pad_token
from twin.settings import Settings
from twin.store.base_models import resolve_base_model
from twin.training.data import read_jsonl, sft_rows, write_jsonl
from twin.training.launch import run_phase
from twin.training.params import TrainingParams
from twin.training.pipeline import phase_config
from twin.training.worker import lora_config


def throughput(metrics: list[dict], warmup: int) -> tuple[float, float]:
    """(tokens/s, s/step) between step `warmup` and the last step."""
    rows = [r for r in metrics if r["step"] >= warmup]
    first, last = rows[0], rows[-1]
    seconds = last["time"] - first["time"]
    tokens = last["num_tokens"] - first["num_tokens"]
    return tokens / seconds, seconds / max(last["step"] - first["step"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument(
        "--configs",
        default="bare,1x2,2x2,2x2gc,2x3",
        help="bare or RANKSxZERO_STAGE[gc], comma-separated",
    )
    parser.add_argument("--qlora", action="store_true", help="4-bit QLoRA (CUDA only)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak (bf16 dense)")
    parser.add_argument("--fp32", action="store_true", help="train in fp32 instead of bf16")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --steps")
    args = parser.parse_args()
    args.steps = max(args.warmup + 2, round(args.steps * args.scale))

    cache = Settings().models_dir()
    base = resolve_base_model(args.model, cache)
    work = Path(tempfile.mkdtemp(prefix="twin-bench-train-"))
    settings = Settings(TWIN_HOME=work, model_cache_dir=cache)
    data = write_jsonl(sft_rows(sample_author_snapshot()), work / "sft.jsonl")
    params_count = _parameters(base.path)
    results = []
    try:
        for index, spec in enumerate(args.configs.split(",")):
            if spec == "bare":
                params = TrainingParams(
                    base_model=args.model, batch_size=args.batch, max_length=args.max_length
                )
                rows = read_jsonl(data)
                tokens_s, step_s, wall = bare_loop(
                    base.path, rows, params, args.steps, args.warmup, not args.fp32
                )
                row = {"config": "bare torch + peft", "tokens_s": tokens_s}
                results.append(row | {"s_per_step": step_s, "wall_s": wall})
                continue
            match = re.fullmatch(r"(\d+)x(\d+)(gc)?", spec)
            if match is None:
                raise SystemExit(f"unknown configuration {spec!r}: bare or RANKSxSTAGE[gc]")
            ranks, stage = int(match[1]), int(match[2])
            params = TrainingParams(
                base_model=args.model,
                ranks=ranks,
                zero_stage=stage,
                max_steps=args.steps,
                save_steps=10_000,
                batch_size=args.batch,
                max_length=args.max_length,
                bf16=not args.fp32,
                qlora=args.qlora,
                gradient_checkpointing="on" if match[3] else "off",
            )
            config = phase_config(params, "sft", str(base.path), data, work / f"{index}-{spec}")
            began = time.perf_counter()
            run_phase(settings, config)
            wall = time.perf_counter() - began
            metrics = read_jsonl(config.metrics_path)
            tokens_s, step_s = throughput(metrics, args.warmup)
            row = {
                "config": f"{ranks} rank(s), ZeRO-{stage}" + (" +ckpt" if match[3] else ""),
                "tokens_s": tokens_s,
                "s_per_step": step_s,
                "wall_s": wall,
            }
            row |= _gpu_figures(config.output_dir, tokens_s, params_count, args.peak_tflops)
            results.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = results[0]["tokens_s"]
    precision = "fp32" if args.fp32 else "bf16"
    print(
        f"model {args.model} ({params_count / 1e6:.1f}M parameters), {args.steps} steps, "
        f"batch {args.batch}/rank, max length {args.max_length}, {precision}"
    )
    print(f"{'configuration':<24}{'tokens/s':>10}{'s/step':>9}{'wall s':>9}{'vs first':>10}")
    for r in results:
        extra = "".join(f"  {k} {v:.3g}" for k, v in r.items() if k in ("peak_gib", "mfu"))
        print(
            f"{r['config']:<24}{r['tokens_s']:>10.0f}{r['s_per_step']:>9.2f}{r['wall_s']:>9.1f}"
            f"{r['tokens_s'] / baseline:>9.2f}x{extra}"
        )
    print(json.dumps(results))


def bare_loop(
    path: Path, rows: list[dict], params: TrainingParams, steps: int, warmup: int, bf16: bool
) -> tuple[float, float, float]:
    """(tokens/s, s/step, wall s) of a plain torch + peft LoRA loop: batches of
    `batch_size` x 2 rows (the two ranks' global batch), loss on every token, AdamW."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, lora_config(params))
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=params.learning_rate
    )
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    batch = params.batch_size * 2
    times, tokens = [], []
    for step in range(steps):
        chunk = [texts[(step * batch + i) % len(texts)] for i in range(batch)]
        enc = tokenizer(
            chunk,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=params.max_length,
            add_special_tokens=False,
        )
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter())
        tokens.append(int(enc["attention_mask"].sum()))
    seconds = times[-1] - times[warmup - 1]
    counted = sum(tokens[warmup:])
    return counted / seconds, seconds / (steps - warmup), time.perf_counter() - began


def _parameters(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in path.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                shape = f.get_slice(name).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def _gpu_figures(out: Path, tokens_s: float, params: int, peak_tflops: float) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    peak = out / "peak_memory.json"
    figures = {"mfu": 6 * params * tokens_s / (peak_tflops * 1e12)}
    if peak.exists():
        figures["peak_gib"] = json.loads(peak.read_text())["peak_bytes"] / 2**30
    return figures


if __name__ == "__main__":
    main()
