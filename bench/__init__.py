"""Benchmarks of issue 4: latency, LeadLex budget, poll cost and burst posting, on loopback (see README.md)."""
