"""Entry point: `python -m stratus_metrics` runs the metrics service (one replica: see bootstrap).

Ingest is background work that may lag a second or two, so the process asks the scheduler for a
lower priority (`STRATUS_METRICS_NICE`, default 10; 0 leaves it alone): on a machine it shares
with the gateway, recording requests then takes CPU from the requests as little as it can
(docs/performance.md, "Request telemetry").
"""

import os

from stratus_kit import run
from stratus_metrics.bootstrap import SERVICE

if __name__ == "__main__":
    niceness = int(os.environ.get("STRATUS_METRICS_NICE", "10"))
    if niceness > 0:
        os.nice(niceness)
    run(SERVICE)
