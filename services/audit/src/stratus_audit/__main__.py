"""Entry point: `python -m stratus_audit` runs the audit service (one replica: see bootstrap)."""

from stratus_audit.bootstrap import SERVICE
from stratus_kit import run

if __name__ == "__main__":
    run(SERVICE)
