"""YARA rules: parse, policy, lint, format, draft and string suggestions."""
