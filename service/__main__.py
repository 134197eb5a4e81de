"""`python -m service`: run the API under uvicorn on SYNAPSE_HOST:SYNAPSE_PORT."""

import os
import sys

import uvicorn

from service.app import create_app
from service.settings import Settings, SettingsError
from service.tenants import TenantsFileError


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
        app = create_app(settings)
    except (SettingsError, TenantsFileError) as exc:
        # A configuration mistake: say what it is in one line, not a traceback.
        sys.exit(f"synapse: {exc}")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
