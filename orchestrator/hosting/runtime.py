"""Starting or joining Ray, once per process.

With ``RAY_ADDRESS`` set, Cadre joins that cluster; otherwise it starts a local Ray instance sized
to this machine, without the dashboard (it costs memory and a port and nobody looks at it here).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import ray

NAMESPACE = "cadre"


def ensure_ray(num_cpus: int | None = None) -> None:
    """Make sure this process is connected to Ray (local or ``RAY_ADDRESS``)."""
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "namespace": NAMESPACE,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **common)
    else:
        # Ray 2.59+ keeps token auth on for a local instance when ~/.ray/auth_token exists and
        # warns each time that it did; the warning is noise for a CLI user, the auth stays on.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        # address="local": a new instance even when `ray start` left a cluster (or the record of
        # a dead one, /tmp/ray/ray_current_cluster) on this machine; joining is RAY_ADDRESS's job.
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            **common,
        )


def shutdown_ray() -> None:
    """Disconnect (and stop a local instance this process started)."""
    if ray.is_initialized():
        ray.shutdown()
