"""Entry point: `python -m stratus_audit` runs the audit service (one replica: see bootstrap)."""

from stratus_audit.bootstrap import setup
from stratus_bus.runtime import run

if __name__ == "__main__":
    run("audit", setup)
