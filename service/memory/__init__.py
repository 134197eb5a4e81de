"""What turns become: episodes flushed to the graph (PII redacted first when asked), rolling
summaries, and recall."""
