"""The local HTTP API: aiohttp on the node's event loop, token auth, SSE events and Prometheus metrics.

No Qt here: the package only needs a running asyncio loop (qasync in the window and in `--worker`).
See docs/api.md for the routes and DESIGN.md for the contracts.
"""
