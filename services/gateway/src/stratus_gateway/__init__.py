"""The HTTP gateway: auth, envelope, RFC 9457 errors and OpenAPI in front of the NATS services."""
