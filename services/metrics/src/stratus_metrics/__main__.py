"""Entry point: `python -m stratus_metrics` runs one replica of the metrics service (see bootstrap).

Ingest is background work that may lag a second or two, so the process asks the scheduler for a
lower priority (`STRATUS_METRICS_NICE`, default 10; 0 leaves it alone): on a machine it shares
with the gateway, recording requests then takes CPU from the requests as little as it can
(docs/performance.md, "Request telemetry").
"""

import os
import signal
import sys

# A SIGTERM while the imports below still run (a stop just after a start) is a clean stop too;
# once serving, the service's own handler drains instead.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

from stratus_kit import run
from stratus_metrics.bootstrap import SERVICE

if __name__ == "__main__":
    niceness = int(os.environ.get("STRATUS_METRICS_NICE", "10"))
    if niceness > 0:
        os.nice(niceness)
    run(SERVICE)
