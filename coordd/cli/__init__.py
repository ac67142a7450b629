"""Command-line tools beside the daemon: `--check`, `watch` and `demo`.
"""
