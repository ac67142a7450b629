"""Live push: the WebSocket hub (sequence numbers, resume, slow clients) and its messages.
"""
