"""`make eval`: memory quality you can measure (LoCoMo-style conversations, Synapse vs BM25).

Modules: locomo (the data layout, robust dates), text (content words, recall definitions),
bm25 (the baseline), harness (ingest, wait, query, score through the public HTTP API),
judge (optional model answer + LLM judge), report (table and JSON), stack (services, API and
janitor of the harness's own), __main__ (the command line).
"""
