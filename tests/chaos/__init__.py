"""Jepsen-style fault-schedule test: load, seeded faults, heal, then check every invariant."""
