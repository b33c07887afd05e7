"""The engine: a dispatcher on the qasync loop feeding a QThreadPool. QtCore only, no widgets.

Used alike by the window and by `--worker`. Everything here runs on the loop thread except handler code (pool
threads) and store calls (one dedicated store thread, so SQLite never blocks the loop).
"""
