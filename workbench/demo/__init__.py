"""``workbench demo``: a deterministic, realistic demo quarantine and corpora."""
