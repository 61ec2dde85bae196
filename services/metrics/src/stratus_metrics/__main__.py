"""Entry point: `python -m stratus_metrics` runs the metrics service (one replica: see bootstrap)."""

from stratus_kit import run
from stratus_metrics.bootstrap import SERVICE

if __name__ == "__main__":
    run(SERVICE)
