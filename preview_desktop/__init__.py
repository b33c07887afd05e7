"""Preview Desktop: low-resolution previews of edit timelines, rendered by a local farm."""

__version__ = "0.1.0"
APP_NAME = "Preview Desktop"
APP_ID = "preview-desktop"
