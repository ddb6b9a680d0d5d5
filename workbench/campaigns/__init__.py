"""Campaigns: quarantined messages grouped into waves by what links them, and rules for a whole wave."""
