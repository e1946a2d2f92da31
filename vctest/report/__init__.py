"""Reporting a test result: JSON round trip, a methods paragraph, a plot."""
