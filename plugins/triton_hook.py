"""`TritonHook`: Triton Inference Server on the `triton_default` connection, for DAG tasks.

The connection is an HTTP connection to Triton's HTTP port; `extra.grpc_url` holds the gRPC
`host:port` (the embedded stack writes both in `AIRFLOW_CONN_TRITON_DEFAULT`). Loading a
`twin_llm` version goes through `twin.serving.repository` (the version is materialised from MLflow
first); other models are loaded by name with Triton's repository API.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from airflow.sdk import BaseHook

from twin.settings import Settings, connection_to_endpoint, load_settings


class TritonHook(BaseHook):
    """Load, unload, readiness and inference on the Triton of an Airflow connection."""

    conn_name_attr = "triton_conn_id"
    default_conn_name = "triton_default"
    conn_type = "http"
    hook_name = "Triton Inference Server"

    def __init__(self, triton_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.triton_conn_id = triton_conn_id
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The project settings with Triton's endpoints taken from the connection."""
        if self._settings is None:
            conn = self.get_connection(self.triton_conn_id)
            extra = conn.extra_dejson
            http_url = connection_to_endpoint(
                "triton_http_url",
                conn.conn_type,
                conn.host,
                conn.port,
                conn.login,
                conn.password,
                conn.schema,
                extra,
            )
            update: dict[str, Any] = {"triton_http_url": http_url}
            if extra.get("grpc_url"):
                update["triton_grpc_url"] = extra["grpc_url"]
            self._settings = load_settings().model_copy(update=update)
        return self._settings

    def get_conn(self):
        """A `tritonclient.http.InferenceServerClient` (close it when done)."""
        from twin.serving.client import http_client

        return http_client(self.settings, timeout_s=self.settings.serving_request_timeout_s)

    def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        """Server readiness, or one model's (and version's) when `model` is given."""
        client = self.get_conn()
        try:
            if model is None:
                return bool(client.is_server_ready())
            return bool(client.is_model_ready(model, str(version or "")))
        except Exception:
            return False
        finally:
            client.close()

    def wait_ready(self, model: str, version: int | None = None, timeout_s: float = 120) -> None:
        """Block until `model` is ready; TimeoutError naming it otherwise."""
        deadline = time.monotonic() + timeout_s
        while not self.is_ready(model, version):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{model} (version {version or 'any'}) not ready in {timeout_s} s"
                )
            time.sleep(1)

    def load(self, model: str, versions: list[int] | None = None) -> list[int]:
        """Load a model; for `twin_llm`, the given registered versions (materialised first).
        Returns the versions now served (empty for other models)."""
        if model == "twin_llm":
            from twin.serving.repository import load_versions

            return load_versions(self.settings, versions or [])
        if model == "twin_rag":
            from twin.serving.repository import load_rag

            load_rag(self.settings)
            return []
        client = self.get_conn()
        try:
            client.load_model(model)
        finally:
            client.close()
        return []

    def unload(self, model: str, version: int | None = None) -> None:
        """Unload a model, or only one version of `twin_llm`."""
        if model == "twin_llm" and version is not None:
            from twin.serving.repository import unload_version

            unload_version(self.settings, version)
            return
        client = self.get_conn()
        try:
            client.unload_model(model)
        finally:
            client.close()

    def infer(
        self, model: str, inputs: dict[str, Any], *, version: int | None = None
    ) -> dict[str, Any]:
        """One request: `inputs` maps names to str / bytes / int / float (or numpy arrays, sent as
        they are); returns every output as a numpy array."""
        import tritonclient.http as triton_http
        from tritonclient.utils import np_to_triton_dtype

        items = []
        for name, value in inputs.items():
            if isinstance(value, np.ndarray):
                array = value
            elif isinstance(value, str | bytes):
                raw = value.encode() if isinstance(value, str) else value
                array = np.array([raw], dtype=np.object_)
            elif isinstance(value, int):
                array = np.array([value], dtype=np.int32)
            else:
                array = np.array([value], dtype=np.float32)
            dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
            item = triton_http.InferInput(name, list(array.shape), dtype)
            item.set_data_from_numpy(array)
            items.append(item)
        client = self.get_conn()
        try:
            result = client.infer(model, items, model_version=str(version or ""))
            outputs = result.get_response().get("outputs", [])
            return {o["name"]: result.as_numpy(o["name"]) for o in outputs}
        finally:
            client.close()

    def test_connection(self) -> tuple[bool, str]:
        """For the Airflow UI's Test button."""
        ok = self.is_ready()
        return (
            ok,
            "Triton is ready" if ok else f"Triton at {self.settings.triton_http_url} is not ready",
        )
