"""Reading the log: the tailer (inotify with a polling safety net), the log file's
rotation/truncation rules, the checkpoint, the ingest pipeline and the snapshot.
"""
