"""Entry point: `python -m stratus_audit` runs one replica of the audit service (see bootstrap)."""

from stratus_audit.bootstrap import SERVICE
from stratus_kit import run

if __name__ == "__main__":
    run(SERVICE)
