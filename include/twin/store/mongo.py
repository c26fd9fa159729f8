"""MongoDB raw store connection: plain pymongo, so it runs unchanged on real MongoDB."""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.database import Database

from twin.settings import Settings


def mongo_client(settings: Settings) -> MongoClient:
    """A client for `MONGO_URI` (or the `mongo_default` connection), timezone-aware."""
    timeout_ms = int(settings.service_timeout_s * 1000)
    return MongoClient(
        settings.require("mongo_uri"),
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname="twinops",
    )


def twin_database(client: MongoClient, settings: Settings) -> Database:
    """The platform's database (`twin` unless configured otherwise)."""
    return client[settings.mongo_database]
