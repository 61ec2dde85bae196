"""Entry point: `python -m stratus_identity` runs one replica of the identity service."""

import signal
import sys

# A SIGTERM while the imports below still run (a stop just after a start) is a clean stop too;
# once serving, the service's own handler drains instead.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

from stratus_identity.bootstrap import SERVICE
from stratus_kit import run

if __name__ == "__main__":
    run(SERVICE)
