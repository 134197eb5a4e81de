"""Tests against a real model server (`make test-model`, deploy/dev/model-server.sh).

They are not part of `make test`: unless SYNAPSE_MODEL_SERVER_URL names a running
OpenAI-compatible chat server, nothing in this folder is collected at all.
"""

import os

if not os.environ.get("SYNAPSE_MODEL_SERVER_URL"):
    collect_ignore_glob = ["test_*.py"]
