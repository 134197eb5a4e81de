"""Who may call: tenants and their API keys, and the admission decision (tenant, quota)."""
