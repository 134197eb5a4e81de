"""`python -m service`: run the API under uvicorn on SYNAPSE_HOST:SYNAPSE_PORT."""

import os
import signal
import sys

import uvicorn

from service.access.tenants import TenantsFileError
from service.app import create_app
from service.settings import Settings, SettingsError


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
        app = create_app(settings)
    except (SettingsError, TenantsFileError) as exc:
        # A configuration mistake: say what it is in one line, not a traceback.
        sys.exit(f"synapse: {exc}")
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the process would end "killed
    # by a signal"; a clean drain is a clean exit for Kubernetes and supervisors.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
        # uvicorn's records go through service/observability/logs.py (JSON); request_context
        # writes one access line per request instead of uvicorn's.
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
