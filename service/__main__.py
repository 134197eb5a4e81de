"""`python -m service`: run the API under uvicorn on SYNAPSE_HOST:SYNAPSE_PORT."""

import os

import uvicorn

from service.app import create_app
from service.settings import Settings


def main() -> None:
    settings = Settings.from_env(os.environ)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
