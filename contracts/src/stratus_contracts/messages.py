"""The two kinds of message that cross the bus, each bound to its service, subject and result type.

A contract module declares its service's bases once and every message subclasses one of them:

    class ProjectsCommand(Command[T], frozen=True, kw_only=True):
        service: ClassVar[str] = SERVICE

    class CreateProject(ProjectsCommand[Project], frozen=True, kw_only=True):
        caller: Caller
        name: str

`CreateProject.subject` is then `cmd.projects.create_project` (the verb is the class name in
snake case) and `CreateProject.returns` is `Project`: the sender (`Bus.call`) and the service's
registrar both read them off the type, so no subject or result type is ever written twice.
"""

from __future__ import annotations

import re
import typing
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

T = TypeVar("T")
_WORD = re.compile(r"(?<!^)(?=[A-Z])")


def verb_of(type_name: str) -> str:
    """`CreateProject` → `create_project`: the subject's last token."""
    return _WORD.sub("_", type_name).lower()


class Message(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A request to a service; its reply carries a `returns` (or a typed error)."""

    kind: ClassVar[str] = ""  # "cmd" or "qry"
    service: ClassVar[str] = ""
    subject: ClassVar[str] = ""
    returns: ClassVar[Any] = None
    # Fields the sender generates afresh on every attempt (a new key's secret hash, say): a
    # retry under the same Idempotency-Key differs only in them and is still the same command.
    volatile: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Message):
                args = typing.get_args(base)
                if args and not isinstance(args[0], TypeVar):
                    cls.returns = args[0]
        # Only concrete messages (their service and kind known, not a service's own base) get a
        # subject; a base such as `ProjectsCommand` is generic and keeps its parent's (empty) one.
        if cls.kind and cls.service and getattr(cls, "__parameters__", ()) == ():
            cls.subject = f"{cls.kind}.{cls.service}.{verb_of(cls.__name__)}"


class Command(Message[T], frozen=True, kw_only=True):
    """Changes something: applied at most once per Idempotency-Key, answered after its events
    are committed."""

    kind: ClassVar[str] = "cmd"


class Query(Message[T], frozen=True, kw_only=True):
    """Reads something. A query may still record an event (a secret reveal is audited), which is
    committed before the answer leaves."""

    kind: ClassVar[str] = "qry"


def is_command(message_type: type) -> bool:
    return isinstance(message_type, type) and issubclass(message_type, Command)


__all__ = ["Command", "Message", "Query", "is_command", "verb_of"]
