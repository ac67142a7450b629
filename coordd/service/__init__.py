"""The daemon's lifetime: building and running the components, health, notify,
garbage-collector policy, logging and the main-agents file.
"""
