"""The central quarantine: the content-addressed store, its index, ingest and checks."""
