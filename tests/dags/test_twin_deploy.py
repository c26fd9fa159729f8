"""`twin_deploy` under `dag.test()` against the real services: a version rejected in review is
rolled back at preflight with the reason, every later step does nothing, reconcile agrees, and a
second run for the decided version changes nothing."""

import uuid

import pytest

from tests.integration.deploy_support import passed, register_versions, tiny_llama_folder
from twin.domain.models import ReviewState

pytestmark = pytest.mark.integration


def test_rejected_version_is_rolled_back_and_a_rerun_changes_nothing(
    run_dag, stack_settings, monkeypatch, tmp_path
) -> None:
    from twin.store.deployments import get_deployment
    from twin.store.warehouse import warehouse_connection

    name = f"twin-llm-dag-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("REGISTERED_MODEL", name)
    (version,) = register_versions(
        stack_settings,
        tiny_llama_folder(tmp_path),
        name,
        [passed(review=ReviewState.REJECTED, review_note="off-voice")],
    )

    first = run_dag("twin_deploy", conf={"version": int(version)})
    with warehouse_connection(stack_settings) as conn:
        decided = get_deployment(conn, name, version)
    second = run_dag("twin_deploy", conf={"version": int(version)})
    with warehouse_connection(stack_settings) as conn:
        again = get_deployment(conn, name, version)

    assert first.state == "success", first
    assert set(first.task_states.values()) == {"success"}
    assert decided.state == "rolled_back" and "rejected in review: off-voice" in decided.reason
    assert second.state == "success", second
    assert again.updated_at == decided.updated_at and again.history == decided.history
