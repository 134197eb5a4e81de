"""The orchestrator's per-turn use cases: buffer a turn, seed a session, close a session."""
