"""What a deployment asks of serving: load a version beside the champion, mirror traffic to it,
switch the default, unload; and what Triton actually has loaded.

`TritonServing` goes through twin.serving's repository functions (Triton version numbers are
MLflow version numbers) and reads the loaded versions from Triton's repository index, so the
reconcile step compares MLflow with what the server really serves, not with a file.
"""

from __future__ import annotations

import re
from typing import Protocol

from twin.serving.backend_names import llm_tensors
from twin.settings import Settings

LLM_MODEL = "twin_llm"


class ServingControl(Protocol):
    def load(self, version: int) -> None: ...

    def unload(self, version: int) -> None: ...

    def set_default(self, version: int) -> None: ...

    def set_shadow(self, version: int | None, share: float) -> None: ...

    def default_version(self) -> int | None: ...

    def loaded_versions(self) -> set[int]: ...

    def ensure_router(self) -> None: ...


class TritonServing:
    """The real serving side: `twin.serving.repository` plus Triton's repository index."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def load(self, version: int) -> None:
        from twin.serving.repository import load_versions

        load_versions(self.settings, [int(version)])

    def unload(self, version: int) -> None:
        from twin.serving.repository import unload_version

        unload_version(self.settings, int(version))

    def set_default(self, version: int) -> None:
        from twin.serving.repository import set_default_version

        set_default_version(self.settings, int(version))

    def set_shadow(self, version: int | None, share: float) -> None:
        from twin.serving.repository import set_shadow

        set_shadow(self.settings, version, share)

    def default_version(self) -> int | None:
        from twin.serving.repository import read_routing

        champion = read_routing(self.settings).get("champion")
        return None if champion is None else int(champion)

    def ensure_router(self) -> None:
        """Load twin_rag when Triton does not serve it (after a restart, for instance)."""
        from twin.serving.client import http_client
        from twin.serving.repository import load_rag

        client = http_client(self.settings)
        try:
            ready = client.is_model_ready("twin_rag")
        finally:
            client.close()
        if not ready:
            load_rag(self.settings)

    def served_versions(self) -> set[int]:
        """Versions the repository's configuration lists."""
        from twin.serving.repository import served_versions

        return {int(v) for v in served_versions(self.settings)}

    def loaded_versions(self) -> set[int]:
        """Versions Triton reports READY: of twin_llm, or (TensorRT-LLM) whose own BLS is
        (raises when Triton is unreachable)."""
        from twin.serving.client import http_client

        names = llm_tensors(self.settings.serving_llm_backend)
        client = http_client(self.settings)
        try:
            index = client.get_model_repository_index()
            if not names.versioned:  # one pipeline per version, its BLS named after it
                pattern = re.compile(rf"{re.escape(names.model)}_v(\d+)")
                return {
                    int(found.group(1))
                    for m in index
                    if m.get("state") == "READY"
                    and (found := pattern.fullmatch(str(m.get("name", ""))))
                }
            versions = {
                int(m["version"])
                for m in index
                if m.get("name") == LLM_MODEL
                and m.get("state") == "READY"
                and str(m.get("version", "")).isdigit()
            }
            if not versions and client.is_model_ready(LLM_MODEL):
                versions = {
                    v for v in self.served_versions() if client.is_model_ready(LLM_MODEL, str(v))
                }
            return versions
        finally:
            client.close()
