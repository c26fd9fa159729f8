"""`config.pbtxt` text for the Python-backend models (parsed by Triton's protobuf in the tests).

The device policy (`twin.domain.devices`, CPU by default) decides the LLM's instance group and
the dtype its weights load in (model parameters `device` and `dtype`). On the CPU `twin_llm` and
`twin_llm_stream` each load the version; on a GPU only `twin_llm` does (`KIND_GPU`, half
precision) and `twin_llm_stream` generates through it by BLS (parameter `generate_with`), so a
served version occupies the GPU once.
"""

from __future__ import annotations

from collections.abc import Sequence

from twin.domain.devices import DevicePolicy, cpu_policy
from twin.settings import Settings

LLM_MODEL = "twin_llm"
STREAM_MODEL = "twin_llm_stream"
RAG_MODEL = "twin_rag"
# twin_llm_stream's cap on concurrent generations (from `serving_stream_max_concurrent`)
STREAM_GENERATIONS_PARAMETER = "max_concurrent_generations"
# twin_llm_stream's parameter naming the model it generates through (no weights of its own)
GENERATE_WITH_PARAMETER = "generate_with"
# torch threads of each instance (0: torch's default)
CPU_THREADS_PARAMETER = "cpu_threads"

_LLM_INPUTS = """input [
  { name: "prompt" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true },
  { name: "temperature" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
  { name: "top_p" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
  { name: "repetition_penalty" data_type: TYPE_FP32 dims: [ 1 ] optional: true },
  { name: "seed" data_type: TYPE_INT32 dims: [ 1 ] optional: true }
]"""


def _parameters(values: dict[str, object]) -> str:
    return "\n".join(
        f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in values.items()
    )


def _limits(settings: Settings) -> dict[str, object]:
    return {
        "max_prompt_bytes": settings.serving_max_prompt_bytes,
        "max_prompt_tokens": settings.serving_max_prompt_tokens,
        "max_new_tokens": settings.serving_max_new_tokens,
        "default_max_tokens": settings.serving_default_max_tokens,
    }


def _threads(settings: Settings) -> dict[str, object]:
    return {CPU_THREADS_PARAMETER: settings.serving_cpu_threads}


def _policy(versions: Sequence[int]) -> str:
    listed = ", ".join(str(v) for v in sorted(set(versions)))
    return f"version_policy: {{ specific: {{ versions: [ {listed} ] }} }}"


def _instances(policy: DevicePolicy) -> str:
    return f"instance_group [ {{ kind: {policy.triton_kind} count: 1 }} ]"


def llm_config(
    settings: Settings,
    versions: Sequence[int],
    *,
    name: str = LLM_MODEL,
    policy: DevicePolicy | None = None,
) -> str:
    """`twin_llm`: batched Python backend; each listed version loads its own weights once, on
    the policy's device in its dtype."""
    policy = policy or cpu_policy()
    batching = (
        f"dynamic_batching {{ max_queue_delay_microseconds: {settings.serving_batch_delay_us} }}"
        if settings.serving_dynamic_batching
        else "# dynamic batching off: requests run one after another"
    )
    return f"""name: "{name}"
backend: "python"
max_batch_size: {settings.serving_max_batch_size}
{_LLM_INPUTS}
output [
  {{ name: "text" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "prompt_tokens" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "completion_tokens" data_type: TYPE_INT32 dims: [ 1 ] }}
]
{batching}
{_policy(versions)}
{_instances(policy)}
{_parameters(_limits(settings) | _threads(settings) | policy.parameters())}
"""


def stream_config(
    settings: Settings,
    versions: Sequence[int],
    *,
    policy: DevicePolicy | None = None,
    through_llm: bool | None = None,
) -> str:
    """`twin_llm_stream`: decoupled, one response per generated piece, then a final flag; at most
    `serving_stream_max_concurrent` generations at once. On a GPU it holds no weights: it asks
    `twin_llm` (same version) and sends the completion as one piece (`through_llm`, default:
    on a GPU)."""
    policy = policy or cpu_policy()
    generations = settings.serving_stream_max_concurrent
    values = {**_limits(settings), **_threads(settings), STREAM_GENERATIONS_PARAMETER: generations}
    if policy.cuda if through_llm is None else through_llm:
        values[GENERATE_WITH_PARAMETER] = LLM_MODEL
    else:
        values |= policy.parameters()
    return f"""name: "{STREAM_MODEL}"
backend: "python"
max_batch_size: 0
{_LLM_INPUTS}
output [ {{ name: "text" data_type: TYPE_STRING dims: [ 1 ] }} ]
model_transaction_policy {{ decoupled: true }}
{_policy(versions)}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{_parameters(values)}
"""


def rag_config(settings: Settings) -> str:
    """`twin_rag`: retrieval + BLS to the champion `twin_llm` (or the requested version)."""
    return f"""name: "{RAG_MODEL}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "query" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "author" data_type: TYPE_STRING dims: [ 1 ] optional: true }},
  {{ name: "model_version" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "prompt_only" data_type: TYPE_BOOL dims: [ 1 ] optional: true }}
]
output [
  {{ name: "answer" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "sources" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "meta" data_type: TYPE_STRING dims: [ 1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: {settings.serving_rag_instances} }} ]
"""
