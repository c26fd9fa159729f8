"""The health checks against the real services, healthy and with one service unreachable."""

import pytest

from twin.ops.healthcheck import UnhealthyServices, check_all, summarise_health
from twin.settings import Settings
from twin.stack.process import free_port

pytestmark = pytest.mark.integration


def test_every_service_is_healthy(stack_settings: Settings) -> None:
    results = check_all(stack_settings)
    assert [r.service for r in results] == ["postgres", "mongo", "mlflow", "triton", "object_store"]
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_an_unreachable_service_is_named_and_the_others_still_checked(
    stack_settings: Settings,
) -> None:
    dead = stack_settings.model_copy(
        update={"triton_http_url": f"http://127.0.0.1:{free_port()}", "service_timeout_s": 1.0}
    )
    results = check_all(dead)

    with pytest.raises(UnhealthyServices) as err:
        summarise_health([r.as_dict() for r in results])

    assert {r.service for r in results if not r.ok} == {"triton"}
    assert "triton        FAILED" in str(err.value)
    assert "4/5 services healthy; failed: triton" in str(err.value)
