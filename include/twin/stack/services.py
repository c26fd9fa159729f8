"""The services of the embedded stack, in one place for the stack manager and for callers.

Each service is a real server process started from a package installed in the project's virtual
environment; nothing is downloaded at run time. The shared contract lives in `base`, each server
in its own module.
"""

from twin.stack.base import LOOPBACK, Service, ServiceError, StackContext, package_dir
from twin.stack.mongo import MongoService
from twin.stack.postgres import PostgresService, ensure_system_user
from twin.stack.s3 import S3Service
from twin.stack.servers import MlflowService, SampleSiteService, TritonService

__all__ = [
    "LOOPBACK",
    "MlflowService",
    "MongoService",
    "PostgresService",
    "S3Service",
    "SampleSiteService",
    "Service",
    "ServiceError",
    "StackContext",
    "TritonService",
    "ensure_system_user",
    "package_dir",
]
