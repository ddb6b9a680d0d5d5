"""Builders of synthetic samples (mail, archives, documents, PE) for the demo and the tests.

Nothing here is live malware: EICAR and GTUBE stand in for malicious content, and
"malicious" documents only carry inert markers that rules can be written against.
"""
