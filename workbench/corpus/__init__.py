"""Corpora of labelled files, the threaded YARA scanner with its result cache, tests and retro-hunts."""
