"""Watch folders (issue #18): an export from the editing software becomes a queued preview without a click.

Qt-free: the watcher runs its file checks on its own thread and acts on jobs only through `WatchJobs`
(watcher.py), a Protocol the job service satisfies. The node starts it as a Component; `preview-desktop watch`
runs it in the foreground.
"""
