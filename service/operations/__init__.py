"""What operators can inspect and force through the internal debug endpoints."""
