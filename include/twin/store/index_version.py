"""An index version of the pgvector store: one embedding model, its dimension and the chunker that
fed it, and the physical table holding its chunks. Shared by `twin.store.vectors` (versions, the
view, indexes) and `twin.store.vector_rows` (the rows of one version)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

SCHEMA = "vectors"


@dataclass(frozen=True)
class IndexVersion:
    """One index version: a model, its dimension and the chunker that fed it."""

    version_id: str
    model_name: str
    dimension: int
    chunker_version: str
    status: str = "building"
    created_at: datetime | None = None
    activated_at: datetime | None = None

    @property
    def table_name(self) -> str:
        """The physical table's name inside the `vectors` schema."""
        return f"chunks_{self.version_id}"

    @property
    def table(self) -> sql.Identifier:
        """The physical table, schema-qualified, for `psycopg.sql` composition."""
        return sql.Identifier(SCHEMA, self.table_name)

    def as_dict(self) -> dict:
        """Plain values (timestamps as ISO strings), for logs and task results."""
        return {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.__dict__.items()
        }


def version_id_for(model_name: str, dimension: int, chunker_version: str) -> str:
    """A short, stable id for (model, dimension, chunker): the same inputs give the same id."""
    blob = f"{model_name}\x1f{dimension}\x1f{chunker_version}".encode()
    return hashlib.sha256(blob).hexdigest()[:12]
