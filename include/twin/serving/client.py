"""Triton clients over HTTP and gRPC (tritonclient), built from settings."""

from __future__ import annotations

from urllib.parse import urlsplit

from twin.settings import Settings


def http_client(settings: Settings):
    """A `tritonclient.http` client for `TRITON_HTTP_URL` (or the `triton_default` connection)."""
    import tritonclient.http as triton_http

    url = urlsplit(settings.require("triton_http_url"))
    timeout = settings.service_timeout_s
    return triton_http.InferenceServerClient(
        url.netloc, ssl=url.scheme == "https", connection_timeout=timeout, network_timeout=timeout
    )


def grpc_client(settings: Settings):
    """A `tritonclient.grpc` client for `TRITON_GRPC_URL` (`host:port`)."""
    import tritonclient.grpc as triton_grpc

    target = settings.require("triton_grpc_url")
    return triton_grpc.InferenceServerClient(target.removeprefix("grpc://"))
