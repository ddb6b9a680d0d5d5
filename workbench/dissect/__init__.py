"""Dissection: every message and attachment taken apart into a tree of artifacts, safely."""
