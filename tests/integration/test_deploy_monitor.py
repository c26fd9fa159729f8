"""twin_monitor on recorded windows written to the real inference log: quiet on a normal hour,
an alert (row, log line, webhook POST) on planted query drift and on a planted latency regression;
a re-run of the same window raises nothing twice. Triton's counters come from the real server."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from twin.deploy.monitor_run import run_monitor
from twin.settings import Settings

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 30, 12, tzinfo=UTC)
OFF_TOPIC = [
    "How long should I rest a sourdough loaf before slicing it?",
    "Which football club won the most league titles in the nineties?",
    "What is the best season to hike in Patagonia?",
    "How do I descale an espresso machine with citric acid?",
    "Can you recommend a beginner watercolour brush set?",
    "What are the rules of cricket's follow-on?",
    "How many minutes do I boil a soft egg at altitude?",
    "Which houseplants survive in a dark bathroom?",
    "What's a good warm-up before a 10k race?",
    "How do I fix a squeaky wooden stair?",
    "Where can I see the northern lights in March?",
    "What wine goes with grilled mackerel?",
]


class Webhook:
    """The outside world's alert receiver: a local HTTP server recording each JSON POST."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/twin"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def author_questions() -> list[str]:
    from sample_author.questions import QUESTIONS

    return [q["question"] for q in yaml.safe_load(QUESTIONS.read_text())["questions"]]


def logged(
    query: str,
    at: datetime,
    latency: float,
    *,
    grounded: bool = True,
    top1: float = 0.6,
    status: str = "ok",
) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "model": "twin_rag",
        "model_version": 1,
        "query": query,
        "status": status,
        "grounded": grounded,
        "retrieved": [{"chunk_id": "c", "score": 0.03, "similarity": top1}],
        "latency_ms": {"total": latency, "generation": latency * 0.8},
        "logged_at": at,
    }


def record_windows(settings: Settings, current_kind: str) -> None:
    """Reference: 7 days of the author's questions; current hour: `normal`, `drift` or `slow`."""
    from twin.store.serving import ensure_serving_schema
    from twin.store.warehouse import warehouse_connection

    rng = random.Random(11)
    questions = author_questions()
    rows = []
    start = END - timedelta(hours=1)
    for i in range(240):
        at = start - timedelta(minutes=37 * (i + 1))
        rows.append(
            logged(rng.choice(questions), at, rng.gammavariate(4, 120), top1=rng.uniform(0.45, 0.8))
        )
    for i in range(80):
        at = start + timedelta(seconds=40 * i)
        if current_kind == "drift":
            query = rng.choice(OFF_TOPIC) + rng.choice(["", " Thanks!", " Please be brief."])
            rows.append(logged(query, at, rng.gammavariate(4, 120), top1=rng.uniform(0.05, 0.3)))
        else:
            scale = 6.0 if current_kind == "slow" else 1.0
            rows.append(
                logged(
                    rng.choice(questions),
                    at,
                    rng.gammavariate(4, 120) * scale,
                    top1=rng.uniform(0.45, 0.8),
                )
            )
    with warehouse_connection(settings, autocommit=True) as conn:
        ensure_serving_schema(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into serving.inference_log (request_id, logged_at, model, model_version, "
                "query, status, grounded, retrieved, latency_ms) values "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        r["request_id"],
                        r["logged_at"],
                        r["model"],
                        r["model_version"],
                        r["query"],
                        r["status"],
                        r["grounded"],
                        json.dumps(r["retrieved"]),
                        json.dumps(r["latency_ms"]),
                    )
                    for r in rows
                ],
            )


def monitor(settings: Settings, webhook: Webhook) -> dict:
    """Run the monitor on the planted serving-log windows. The session's Triton counters carry
    whatever earlier modules asked it (CPU generation, seconds a request), so the Triton checks
    are left out here: the unit tests cover them and the last test reads the real endpoint."""
    configured = settings.model_copy(
        update={"alert_webhook_url": webhook.url, "triton_metrics_url": None}
    )
    result = run_monitor(configured, END.isoformat())
    print(result["window_end"], result["alerts"], result["figures"])
    return result


def test_normal_window_is_quiet(scratch_warehouse: Settings, webhook: Webhook) -> None:
    record_windows(scratch_warehouse, "normal")

    result = monitor(scratch_warehouse, webhook)

    assert result["figures"]["queries"] == 80
    assert result["alerts"] == []
    assert webhook.received == []
    assert result["figures"]["query_psi"] < 0.2


def test_planted_query_drift_alerts_once(scratch_warehouse: Settings, webhook: Webhook) -> None:
    from twin.store.deployments import list_alerts
    from twin.store.warehouse import warehouse_connection

    record_windows(scratch_warehouse, "drift")

    first = monitor(scratch_warehouse, webhook)
    again = monitor(scratch_warehouse, webhook)

    assert "query_drift" in first["alerts"]
    assert "top1_similarity_drift" in first["alerts"]
    assert first["figures"]["query_psi"] > 0.2
    assert first["figures"]["query_mmd_p_value"] < 0.01
    assert {p["check"] for p in webhook.received} == set(first["alerts"])
    assert again["delivered"]["new"] == 0 and again["delivered"]["repeated"] >= 2
    with warehouse_connection(scratch_warehouse) as conn:
        stored = {a["check_name"] for a in list_alerts(conn, "twin_monitor")}
    assert stored == set(first["alerts"])


def test_planted_latency_regression_alerts(scratch_warehouse: Settings, webhook: Webhook) -> None:
    record_windows(scratch_warehouse, "slow")

    result = monitor(scratch_warehouse, webhook)

    assert result["alerts"] == ["latency"]
    assert result["figures"]["latency_p95_ratio"] > 3
    assert webhook.received[0]["check"] == "latency"
    assert webhook.received[0]["severity"] == "critical"


def test_triton_counters_are_read_from_the_real_metrics_endpoint(
    stack_settings: Settings,
) -> None:
    import httpx

    from twin.deploy.monitor import parse_prometheus

    assert stack_settings.triton_metrics_url, "TRITON_METRICS_URL missing from stack.env"
    text = httpx.get(stack_settings.triton_metrics_url, timeout=5).text
    samples = parse_prometheus(text)

    assert any(name.startswith("nv_") for name, _ in samples)
