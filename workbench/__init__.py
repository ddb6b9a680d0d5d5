"""The signature-writing workbench: quarantine, dissection, YARA rules, releases, distribution."""

__version__ = "0.1.0"
