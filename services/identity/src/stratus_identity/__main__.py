"""Entry point: `python -m stratus_identity` runs one replica of the identity service."""

from stratus_identity.bootstrap import SERVICE
from stratus_kit import run

if __name__ == "__main__":
    run(SERVICE)
