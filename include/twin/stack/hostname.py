"""The host name task instances report (`[core] hostname_callable`).

A Celery worker of the embedded stack stands for a machine of its own, so its task instances
show its own name; everywhere else this is Airflow's default (the fully qualified host name).
"""

from __future__ import annotations

import os
import socket

WORKER_HOSTNAME_ENV = "TWIN_WORKER_HOSTNAME"


def worker_hostname() -> str:
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()
