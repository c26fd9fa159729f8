"""Deployment states (which step a state has passed) and Triton's Prometheus counters."""

import pytest

from twin.deploy.monitor import counter_rates, parse_prometheus, triton_counters
from twin.deploy.state import DeploymentState as S
from twin.deploy.state import reached

# Recorded from Triton 2.51's metrics endpoint (trimmed).
METRICS = """
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="twin_rag",version="1"} 120
nv_inference_request_success{model="twin_llm",version="1"} 118
nv_inference_request_success{model="twin_llm",version="2"} 40
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="twin_rag",reason="BACKEND",version="1"} 3
nv_inference_request_failure{model="twin_rag",reason="OTHER",version="1"} 1
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="twin_rag",version="1"} 36000000
nv_cpu_utilization 0.25
"""


def test_reached_orders_the_steps_and_decisions_pass_everything() -> None:
    assert reached(S.LOADED, S.PREFLIGHT_OK)
    assert not reached(S.PREFLIGHT_OK, S.LOADED)
    assert reached(S.PROMOTED, S.CHECKED) and reached(S.ROLLED_BACK, S.SHADOWING)
    assert not reached(S.FAILED, S.PREFLIGHT_OK)  # a failed run starts again


def test_prometheus_text_is_parsed_with_labels() -> None:
    samples = parse_prometheus(METRICS)

    key = ("nv_inference_request_success", frozenset({("model", "twin_llm"), ("version", "2")}))
    assert samples[key] == 40
    assert samples[("nv_cpu_utilization", frozenset())] == 0.25


def test_counters_and_rates_between_two_scrapes() -> None:
    after = triton_counters(METRICS, "twin_rag")
    before = {"success": 20.0, "failure": 0.0, "duration_us": 6_000_000.0}

    rates = counter_rates(before, after)

    assert after == {"success": 120.0, "failure": 4.0, "duration_us": 36_000_000.0}
    assert rates["requests"] == 104
    assert rates["error_rate"] == pytest.approx(4 / 104)
    assert rates["mean_latency_ms"] == pytest.approx(300.0)


def test_a_restarted_server_counts_from_zero() -> None:
    after = {"success": 10.0, "failure": 0.0, "duration_us": 1_000_000.0}
    before = {"success": 500.0, "failure": 2.0, "duration_us": 9e9}

    assert counter_rates(before, after)["requests"] == 10
