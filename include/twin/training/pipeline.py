"""A training run end to end: validate, skip if already trained, SFT, DPO, evaluate, register.

Every heavy step runs in processes of its own (the ranks, the merge, the evaluation); this
process only writes configurations, waits, and talks to MLflow. Outputs live under
`<home>/training/<dataset version>-<config hash>/`, so a killed run resumes where it stopped; a
run that differs from an earlier one of the same dataset only in its DPO knobs reuses that run's
SFT phase (`reuse_sft`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from twin.domain.devices import detect, mixed_precision
from twin.domain.samples import DatasetSnapshot, Split
from twin.settings import Settings
from twin.store.base_models import BaseModelFolder, resolve_base_model
from twin.training.config import WorkerConfig, base_model_module_names
from twin.training.data import dpo_rows, sft_rows, write_jsonl
from twin.training.launch import LaunchError, launch_env, model_cache, prepare_phase, run_phase
from twin.training.params import ParamsError, TrainingParams, check_params

PHASE_KEY = "phase.json"  # in a finished SFT phase's folder: the configuration digest it trained


@dataclass(frozen=True)
class TrainingOutcome:
    """What a run did: `trained` (a new version) or `skipped` (this dataset and configuration
    already have one)."""

    status: str
    dataset_version: str
    config_hash: str
    version: str | None
    run_id: str | None = None
    evaluation: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def run_dir(settings: Settings, dataset_version: str, config_hash: str) -> Path:
    return settings.training_runs_dir() / f"{dataset_version[:16]}-{config_hash}"


def validate_run(
    params: TrainingParams, snapshot: DatasetSnapshot, settings: Settings
) -> BaseModelFolder:
    """Everything that can be checked before a process starts; errors name the parameter."""
    try:
        base = resolve_base_model(params.base_model, model_cache(settings))
    except ValueError as exc:
        raise ParamsError("base_model", str(exc)) from None
    check_params(params, module_names=base_model_module_names(str(base.path)))
    from transformers import AutoTokenizer

    from twin.training.templates import TemplateError, sft_loss_mode

    try:
        sft_loss_mode(AutoTokenizer.from_pretrained(str(base.path)), params.base_model)
    except TemplateError as exc:
        raise ParamsError("base_model", str(exc)) from None
    if not snapshot.instruction_split(Split.TRAIN):
        raise ParamsError(
            "dataset_version", f"{snapshot.version.version} has no training instructions"
        )
    if params.dpo and not snapshot.preference_split(Split.TRAIN):
        raise ParamsError("dpo", f"dataset {snapshot.version.version} has no preference pairs")
    if not snapshot.instruction_split(Split.TEST):
        raise ParamsError("dataset_version", f"{snapshot.version.version} has no held-out split")
    return base


def train_candidate(
    settings: Settings, params: TrainingParams, snapshot: DatasetSnapshot
) -> TrainingOutcome:
    """Train, evaluate and register one candidate, or skip when it exists (unless `force`)."""
    from twin.training.registry import find_trained_version

    base = validate_run(params, snapshot, settings)
    dataset_version, config_hash = snapshot.version.version, params.config_hash()
    if not params.force:
        existing = find_trained_version(settings, dataset_version, config_hash)
        if existing:
            return TrainingOutcome("skipped", dataset_version, config_hash, existing)
    folder = run_dir(settings, dataset_version, config_hash)
    if params.force:
        shutil.rmtree(folder, ignore_errors=True)
    phases = train_phases(settings, params, snapshot, base, folder)
    evaluation = evaluate_phases(settings, params, snapshot, base, phases, folder)
    return register(settings, params, snapshot, base, phases, evaluation, folder)


def phase_config(
    params: TrainingParams, phase: str, model_path: str, data: Path, folder: Path
) -> WorkerConfig:
    out = folder / phase
    ds = out / "deepspeed.json" if params.zero_stage else None
    return WorkerConfig(
        phase=phase,
        model_path=model_path,
        data_path=data,
        output_dir=out,
        deepspeed_config=ds,
        params=params,
    )


def train_phases(
    settings: Settings,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    base: BaseModelFolder,
    folder: Path,
) -> dict[str, WorkerConfig]:
    """SFT on the base model, then (when `dpo`) DPO on the merged SFT model, whose rejected
    answers are the SFT model's own (`twin.training.rejected`)."""
    sft_data = write_jsonl(sft_rows(snapshot), folder / "data" / "sft.jsonl")
    sft = phase_config(params, "sft", str(base.path), sft_data, folder)
    if not params.force:
        reuse_sft(settings, snapshot.version.version, params, sft)
    run_phase(settings, sft)
    (sft.output_dir / PHASE_KEY).write_text(json.dumps({"sft_hash": params.sft_hash()}))
    phases = {"sft": sft}
    if params.dpo:
        limit = dpo_pairs_needed(params)
        own = own_answers(settings, params, snapshot, str(sft.merged_dir), folder, limit)
        rows, sources = dpo_rows(snapshot, own_answers=own, limit=limit)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "data" / "rejected_sources.json").write_text(json.dumps(sources))
        dpo_data = write_jsonl(rows, folder / "data" / "dpo.jsonl")
        dpo = phase_config(params, "dpo", str(sft.merged_dir), dpo_data, folder)
        run_phase(settings, dpo)
        phases["dpo"] = dpo
    return phases


def reuse_sft(
    settings: Settings, dataset_version: str, params: TrainingParams, sft: WorkerConfig
) -> Path | None:
    """Bring the finished SFT phase of another run of this dataset with the same SFT
    configuration (one that differs in its DPO or evaluation knobs only) into this run's folder
    (weights linked, the rest copied), so the phase is not trained twice; returns the folder it
    came from, or None. Checkpoints stay behind; `DONE` comes last, so a phase brought over only
    in part is simply trained."""
    if sft.done_marker.exists():
        return None
    wanted = {"sft_hash": params.sft_hash()}
    runs = settings.training_runs_dir()
    for key in sorted(runs.glob(f"{dataset_version[:16]}-*/sft/{PHASE_KEY}")):
        source = key.parent
        done = source / sft.done_marker.name
        if source == sft.output_dir or not done.exists() or not (source / "merged").is_dir():
            continue
        if json.loads(key.read_text()) != wanted:
            continue
        shutil.rmtree(sft.output_dir, ignore_errors=True)
        shutil.copytree(
            source,
            sft.output_dir,
            ignore=shutil.ignore_patterns("checkpoints", "worker.json", done.name),
            copy_function=_link_or_copy,
        )
        prepare_phase(sft)  # another node of a multi-node run reads it: SFT is trained
        (sft.output_dir / "REUSED").write_text(str(source))
        _link_or_copy(str(done), str(sft.done_marker))
        return source
    return None


def _link_or_copy(src: str, dst: str) -> None:
    """Weights are linked (written once, never rewritten); every other file is copied, since
    some are rewritten in place later (the merged model's `generation_config.json`)."""
    if src.endswith(".safetensors"):
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system
            pass
    shutil.copy2(src, dst)


def dpo_pairs_needed(params: TrainingParams) -> int | None:
    """Pairs a step-limited DPO phase reaches (one pass); None: every pair (epochs)."""
    if params.dpo_max_steps < 0:
        return None
    return params.dpo_max_steps * params.batch_size * params.grad_accum * params.ranks


def own_answers(
    settings: Settings,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    model_path: str,
    folder: Path,
    limit: int | None,
) -> dict[str, str]:
    """The model's own answers to the DPO prompts, in a process of its own (cached by content
    hash in the model cache); an empty map when the generation fails (every pair then keeps
    the dataset's rejected text, counted as fallback)."""
    from twin.training.data import preference_samples
    from twin.training.registry import read_json
    from twin.training.rejected import RejectedConfig, model_key

    samples = preference_samples(snapshot, limit=limit)
    config = RejectedConfig(
        model_path=model_path,
        model_key=model_key(model_path),
        prompts=list(dict.fromkeys((s.prompt, len(s.chosen)) for s in samples)),
        output_path=folder / "data" / "own_answers.json",
        cache_dir=model_cache(settings) / "rejected",
        bf16=mixed_precision(params.bf16, detect()),
    )
    path = folder / "data" / "rejected.json"
    path.write_text(config.model_dump_json(indent=2))
    log = folder / "data" / "rejected.log"
    with log.open("ab") as out:
        rc = subprocess.run(
            [sys.executable, "-m", "twin.training.rejected", str(path)],
            env=launch_env(settings, 1),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    return read_json(config.output_path) if rc == 0 and config.output_path.exists() else {}


def evaluate_phases(
    settings: Settings,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    base: BaseModelFolder,
    phases: dict[str, WorkerConfig],
    folder: Path,
) -> dict:
    """Base vs each phase's merged model, in a process of its own: perplexity on the held-out
    split, voice and loops on the author's topic-held-out prompts (see `twin.training.evaluate`).
    The decoding chosen for the candidate is saved with its merged model."""
    from twin.domain.generation import GenerationSettings
    from twin.training.registry import read_json

    config = eval_config(settings, params, snapshot, base, phases, folder)
    final = phases["dpo" if "dpo" in phases else "sft"]
    if not config.output_path.exists():
        path = folder / "evaluation" / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config.model_dump_json(indent=2))
        log = folder / "evaluation" / "evaluate.log"
        with log.open("ab") as out:
            rc = subprocess.run(
                [sys.executable, "-m", "twin.training.evaluate", str(path)],
                env=launch_env(settings, 1),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc != 0:
            raise LaunchError(
                f"evaluation failed (exit {rc}); log {log}:\n{log.read_text()[-3000:]}"
            )
    evaluation = read_json(config.output_path)
    GenerationSettings.model_validate(evaluation["generation"]).save(final.merged_dir)
    return evaluation


def eval_config(
    settings: Settings,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    base: BaseModelFolder,
    phases: dict[str, WorkerConfig],
    folder: Path,
):
    """The evaluation's configuration: held-out pairs, the author's corpus and training text,
    the author's topic-held-out prompts, seeds and decoding."""
    from twin.training.evaluate import EvalConfig
    from twin.training.style_prompts import author_prompts

    heldout = spread_by_document(snapshot.instruction_split(Split.TEST))
    train = snapshot.instruction_split(Split.TRAIN)
    corpus = list(dict.fromkeys(s.answer for s in (*train, *heldout)))
    platforms = sorted({s.platform for s in snapshot.instructions})
    prompts, origin = author_prompts(snapshot.version.author, corpus, platforms)
    return EvalConfig(
        models={"base": str(base.path)} | {name: str(c.merged_dir) for name, c in phases.items()},
        heldout=[(s.instruction, s.answer) for s in heldout[: params.eval_pairs]],
        corpus=corpus,
        training_texts=[s.answer for s in train],
        style_prompts=prompts[: params.eval_samples],
        style_prompts_origin=origin,
        output_path=folder / "evaluation" / f"results-{_eval_key(params)}.json",
        seeds=list(range(params.eval_seeds)),
        max_new_tokens=params.max_new_tokens,
        max_length=params.max_length,
        bf16=mixed_precision(params.bf16, detect()),
        cache_dir=model_cache(settings) / "evaluation",
        judge_url=settings.judge_url,
        judge_model=settings.judge_model,
    )


def register(
    settings: Settings,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    base: BaseModelFolder,
    phases: dict[str, WorkerConfig],
    evaluation: dict,
    folder: Path,
) -> TrainingOutcome:
    from transformers import AutoTokenizer

    from twin.domain.models import tokenizer_fingerprint
    from twin.training.registry import RunArtifacts, load_metrics, read_json, register_candidate
    from twin.training.report import model_card

    final = phases["dpo" if "dpo" in phases else "sft"]
    fingerprint = tokenizer_fingerprint(AutoTokenizer.from_pretrained(str(final.merged_dir)))
    steps = {name: read_json(c.done_marker)["global_step"] for name, c in phases.items()}
    artifacts = RunArtifacts(
        run_dir=folder,
        merged_dir=final.merged_dir,
        adapters={name: c.adapter_dir for name, c in phases.items()},
        deepspeed_config=phases["sft"].deepspeed_config,
        metrics=load_metrics([c.metrics_path for c in phases.values()]),
        evaluation=evaluation,
        steps=steps,
    )
    card = model_card(
        model_name=settings.registered_model,
        author=snapshot.version.author,
        dataset_version=snapshot.version.version,
        counts=snapshot.version.counts,
        params=params,
        base_model_digest=base.source_digest,
        tokenizer_fingerprint=fingerprint,
        config_hash=params.config_hash(),
        evaluation=evaluation,
        steps=steps,
        rejected_sources=_read_optional(folder / "data" / "rejected_sources.json"),
    )
    (folder / "model_card.md").write_text(card)
    registered = register_candidate(
        settings,
        params=params,
        snapshot=snapshot,
        artifacts=artifacts,
        base_model_digest=base.source_digest,
        tokenizer_fingerprint=fingerprint,
        model_card=card,
    )
    return TrainingOutcome(
        "trained",
        snapshot.version.version,
        params.config_hash(),
        registered.version,
        registered.run_id,
        evaluation,
    )


def _read_optional(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def spread_by_document(samples: list) -> list:
    """Round-robin over documents, so the first N held-out pairs come from N documents."""
    by_doc: dict[str, list] = {}
    for sample in samples:
        by_doc.setdefault(sample.document_id, []).append(sample)
    queues = [by_doc[d] for d in sorted(by_doc)]
    spread = []
    for depth in range(max((len(q) for q in queues), default=0)):
        spread += [q[depth] for q in queues if depth < len(q)]
    return spread


def _eval_key(params: TrainingParams) -> str:
    from twin.domain.samples import content_digest

    names = ("eval_samples", "eval_pairs", "eval_seeds", "max_new_tokens")
    knobs = {k: getattr(params, k) for k in names}
    knobs["selection"] = "topic-held-out-v1"
    return content_digest(knobs)[:8]
