"""Entry point: `python -m stratus_identity` runs one replica of the identity service."""

from stratus_bus.runtime import run
from stratus_identity.bootstrap import setup

if __name__ == "__main__":
    run("identity", setup)
