"""The desktop window: PySide6 widgets and pyqtgraph plots. The only package that imports QtWidgets.

Everything here runs on the qasync loop thread and learns about jobs only through `adapter.EngineAdapter`.
"""
