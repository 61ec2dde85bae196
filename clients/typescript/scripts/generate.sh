#!/bin/sh
# Regenerate the client's types from an OpenAPI document:
#
#     npm run generate -- [SPEC [OUT]]
#
# SPEC is a URL or a file (default: $STRATUS_OPENAPI, else a local stack's
# http://127.0.0.1:8080/openapi.json); OUT defaults to src/schema.d.ts. Relative paths are taken
# from this package's directory. The flags live here only, so that the freshness check
# (tests/clients/test_typescript_client.py) generates exactly what this does.
#
# --default-non-nullable false: a property is optional exactly when the spec leaves it out of
# `required`. (openapi-typescript's default also makes every property with a `default` required,
# which would make clients send fields the API fills in, such as a project's `description`.)
set -eu
cd "$(dirname "$0")/.."
exec node_modules/.bin/openapi-typescript \
    "${1:-${STRATUS_OPENAPI:-http://127.0.0.1:8080/openapi.json}}" \
    --default-non-nullable false \
    --output "${2:-src/schema.d.ts}"
