"""The audit service: the audit log (`GET /v1/audit-events`), a view of the `EVENTS` stream."""
