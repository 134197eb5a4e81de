"""`python -m tests.eval PATH` (what `make eval DATA=PATH` runs); see tests/eval/cli.py."""

from tests.eval.cli import main

main()
