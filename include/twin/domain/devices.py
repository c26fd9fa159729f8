"""Where models run and in which precision: one policy for training, evaluation, merging,
MLflow logging and Triton's Python backend.

- CPU (the default, what CI runs): float32 weights; training and evaluation autocast to bf16
  where the CPU multiplies bf16 in hardware (`TrainingParams.bf16` "auto"; emulated bf16 on
  other CPUs is about 3x slower than float32).
- CUDA: half precision, bf16 where the GPU supports it, else fp16; Triton's models get a
  `KIND_GPU` instance group.

`TWIN_DEVICE` chooses: `auto` (CUDA when torch sees a GPU), `cpu` or `cuda`. A host with an
NVIDIA driver whose torch has no CUDA (the default CPU wheel) is refused with an explanation
rather than launched half-configured (DeepSpeed on `DS_ACCELERATOR=cuda` fails in the ranks).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DEVICE_ENV = "TWIN_DEVICE"
DRIVER_PROC = Path("/proc/driver/nvidia")
Kind = Literal["cpu", "cuda"]
DType = Literal["float32", "bfloat16", "float16"]


def use_cpu_threads(threads: int | None) -> None:
    """Run this process's torch work on `threads` threads (0 or None: torch's default, one per
    core). Several processes on one host each take every core by default and contend; on a
    shared, oversubscribed CPU fewer threads can be faster."""
    if threads:
        import torch

        torch.set_num_threads(threads)


class DeviceError(RuntimeError):
    """The requested device cannot be used on this host; the message says why and what to do."""


@dataclass(frozen=True)
class DevicePolicy:
    """A device kind and the dtype model weights load in there."""

    kind: Kind = "cpu"
    dtype: DType = "float32"

    @property
    def cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def half(self) -> bool:
        return self.dtype != "float32"

    @property
    def triton_kind(self) -> str:
        return "KIND_GPU" if self.cuda else "KIND_CPU"

    @property
    def deepspeed_accelerator(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def device(self, local_rank: int = 0) -> str:
        return f"cuda:{local_rank}" if self.cuda else "cpu"

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def load_kwargs(self, local_rank: int = 0) -> dict[str, Any]:
        """`from_pretrained` arguments: the dtype, and on CUDA the rank's own GPU."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype()}
        if self.cuda:
            kwargs["device_map"] = {"": local_rank}
        return kwargs

    def parameters(self) -> dict[str, str]:
        """As Triton model-config parameters (read back by `from_parameters`)."""
        return {"device": self.kind, "dtype": self.dtype}

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> DevicePolicy:
        """The policy a Triton model config's parameters carry; CPU float32 when absent."""

        def value(key: str, default: str) -> str:
            entry = parameters.get(key) or {}
            return str(entry.get("string_value") or default)

        return policy_for(value("device", "cpu"), value("dtype", "float32"))  # type: ignore[arg-type]


def cpu_policy() -> DevicePolicy:
    return DevicePolicy("cpu", "float32")


def native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without the probes: assume emulated bf16, which is slower
        return False


def mixed_precision(setting: str, policy: DevicePolicy) -> bool:
    """Whether training and evaluation run in half precision under `setting` ("on", "off",
    "auto") on `policy`'s device: "auto" is on a GPU (bf16, else fp16) and on a CPU that
    multiplies bf16 in hardware; elsewhere bf16 is emulated and slower than float32."""
    if setting == "auto":
        return policy.cuda or native_bf16()
    return setting == "on"


def precision_name(setting: str, policy: DevicePolicy) -> str:
    """What `setting` resolves to on `policy`'s device, by name (float32, bfloat16, float16):
    recorded with a training run, since "auto" differs between machines."""
    if not mixed_precision(setting, policy):
        return "float32"
    return policy.dtype if policy.cuda else "bfloat16"


def cuda_policy(bf16_supported: bool) -> DevicePolicy:
    """Half precision on a GPU: bf16 where supported (Ampere and later), else fp16."""
    return DevicePolicy("cuda", "bfloat16" if bf16_supported else "float16")


def policy_for(kind: str, dtype: str) -> DevicePolicy:
    """A policy from its two names; ValueError names an unknown one."""
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {kind!r}: use 'cpu' or 'cuda'")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
    if kind == "cpu" and dtype == "float16":
        raise ValueError("float16 weights are for CUDA; on the CPU use float32 or bfloat16")
    return DevicePolicy(kind, dtype)  # type: ignore[arg-type]


def driver_present(proc_path: Path = DRIVER_PROC) -> bool:
    """An NVIDIA driver on this host (`nvidia-smi` on PATH or `/proc/driver/nvidia`)."""
    return shutil.which("nvidia-smi") is not None or proc_path.exists()


def detect(
    requested: str | None = None,
    *,
    cuda_available: bool | None = None,
    bf16_supported: bool | None = None,
    driver: bool | None = None,
) -> DevicePolicy:
    """The policy for this host. `requested` (default `TWIN_DEVICE`, else `auto`): `cpu`,
    `cuda`, or `auto`. DeviceError when CUDA is asked for (explicitly, or by a driver being
    present under `auto`) and this torch cannot use it. The keyword arguments stand in for
    what torch and the host report."""
    requested = (requested or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if requested not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{DEVICE_ENV}={requested!r}: use auto, cpu or cuda")
    if requested == "cpu":
        return cpu_policy()
    if cuda_available is None or bf16_supported is None:
        import torch

        available = torch.cuda.is_available()
        cuda_available = available if cuda_available is None else cuda_available
        if bf16_supported is None:
            bf16_supported = bool(available and torch.cuda.is_bf16_supported())
    if cuda_available:
        return cuda_policy(bf16_supported)
    driver = driver_present() if driver is None else driver
    if requested == "cuda" or driver:
        raise DeviceError(_no_cuda_explanation(requested, driver))
    return cpu_policy()


def _no_cuda_explanation(requested: str, driver: bool) -> str:
    try:
        import torch

        build = f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none'})"
    except ImportError:  # pragma: no cover - torch is a runtime dependency
        build = "torch (not installed)"
    why = (
        "this host has an NVIDIA driver (nvidia-smi or /proc/driver/nvidia)"
        if driver
        else f"{DEVICE_ENV}=cuda was requested"
    )
    return (
        f"{why}, but {build} cannot use a GPU (torch.cuda.is_available() is false): install "
        "torch's CUDA build of the pinned release and requirements-gpu.txt to train and serve "
        f"on the GPU, or set {DEVICE_ENV}=cpu to run on the CPU deliberately"
    )
