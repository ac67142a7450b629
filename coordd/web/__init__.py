"""The HTTP/WebSocket frontend: the Quart-Trio app, OpenAPI and `/metrics`.
"""
