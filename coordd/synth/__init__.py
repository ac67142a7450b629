"""The synthetic coordination-log generator used by the demo, tests and benchmarks.
"""
