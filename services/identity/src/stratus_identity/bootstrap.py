"""The identity service as the kit runs it: one partition (`main`: accounts span both modes, and
each key and member records its own), its read model and publisher, and the table of message
type → handler."""

from __future__ import annotations

from stratus_contracts import identity as c
from stratus_identity import handlers, read_model, views
from stratus_identity.domain import MUTATES
from stratus_kit import Service

PARTITION = "main"

SERVICE = Service(
    name=c.SERVICE,
    handlers=lambda: handlers.HANDLERS,
    partitions=(PARTITION,),
    route=lambda message: PARTITION,
    mutates=MUTATES,
    read_models=(read_model.READ_MODEL,),
    publisher=views.PUBLISHER,
)
