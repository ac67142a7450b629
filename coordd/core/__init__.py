"""The pure core: the event record, enrichment, work sessions, the in-memory store and
the queries over it. Imports nothing of coordd but `errors` and `hookspecs` types,
and never trio, pymongo, quart or hypercorn.
"""
