"""NATS subject names that are not a message type's own.

Commands and queries travel on the subject their type declares (`CreateProject.subject`, see
`stratus_contracts.messages`); what is built here are the event subjects, the queue groups and
the ping every service answers. Nothing else formats a subject.
"""

from __future__ import annotations

import re

EVENTS_STREAM = "EVENTS"
EVENTS_SUBJECTS = "evt.>"


def event(mode: str, account: str, aggregate: str, name: str) -> str:
    return f"evt.{mode}.{account}.{aggregate}.{name}"


def queue_group(service: str) -> str:
    """Replicas of one service share commands and queries through this queue group."""
    return f"svc.{service}"


def ping(service: str) -> str:
    return f"qry.{service}.ping"


def host_ping(service: str, host: str) -> str:
    """The ping only the replicas on `host` answer (no queue group): what a container's own
    health probe asks, so that another replica cannot answer for a stuck one. `host` is the
    machine's name (a pod's name on Kubernetes, a container's id under Docker), made a token."""
    return f"qry.{service}.ping.{re.sub(r'[^A-Za-z0-9_-]', '_', host)}"
