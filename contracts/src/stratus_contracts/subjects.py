"""NATS subject names that are not a message type's own.

Commands and queries travel on the subject their type declares (`CreateProject.subject`, see
`stratus_contracts.messages`); what is built here are the event subjects, the queue groups and
the ping every service answers, and the subjects of the gateway's idempotency records (which the
sandbox reset purges by mode). Nothing else formats a subject.
"""

from __future__ import annotations

import re

EVENTS_STREAM = "EVENTS"
EVENTS_SUBJECTS = "evt.>"

# The gateway's idempotency records (JetStream KV, `stratus_gateway.idempotency`). Each KV key
# starts with the request's mode as its own token (`test.<sha256>`), so that one mode's records
# are one subject filter on the bucket's stream.
IDEMPOTENCY_BUCKET = "stratus_idempotency"
IDEMPOTENCY_STREAM = f"KV_{IDEMPOTENCY_BUCKET}"


def event(mode: str, account: str, aggregate: str, name: str) -> str:
    return f"evt.{mode}.{account}.{aggregate}.{name}"


def idempotency_key(mode: str, digest: str) -> str:
    """The KV key of a keyed write's record in `IDEMPOTENCY_BUCKET`: its mode, then its digest."""
    return f"{mode}.{digest}"


def idempotency_records(mode: str) -> str:
    """The subjects of every record of `mode` on `IDEMPOTENCY_STREAM`."""
    return f"$KV.{IDEMPOTENCY_BUCKET}.{mode}.>"


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
