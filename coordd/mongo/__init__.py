"""The optional MongoDB tier: sink, sync worker, schema, warm load, re-read, queries,
stats, follower and the tier object that wires them into the service.
"""
