"""Everything Synapse keeps in Redis, and the only code that talks to Redis.

- layout.py: every key name (hash-tagged per user bucket; see its docstring for the map);
- fields.py: every hash's field names, shared with the Lua scripts;
- lua.py, scripts.py, lua/: the scripts, each receiving every key it touches in KEYS;
- the repositories: sessions.py (turns, closes, briefs), outbox.py (the durable outbox and its
  leases), summaries.py (the rolling summary's input), usage.py (LLM costs), admission.py
  (rate and quota counters), audit.py (the audit streams), counters.py (the janitors'
  counters), users.py (a user's footprint and its deletion);
- client.py: the connection, and Store, the process's one set of repositories over it.
"""
