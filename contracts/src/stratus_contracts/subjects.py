"""NATS subject names. Every subject is built here, never by string formatting at a call site."""

from __future__ import annotations

EVENTS_STREAM = "EVENTS"
EVENTS_SUBJECTS = "evt.>"


def command(service: str, verb: str) -> str:
    return f"cmd.{service}.{verb}"


def query(service: str, name: str) -> str:
    return f"qry.{service}.{name}"


def event(mode: str, account: str, aggregate: str, name: str) -> str:
    return f"evt.{mode}.{account}.{aggregate}.{name}"


def queue_group(service: str) -> str:
    """Replicas of one service share commands and queries through this queue group."""
    return f"svc.{service}"


def ping(service: str) -> str:
    return query(service, "ping")
