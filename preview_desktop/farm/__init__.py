"""The Redis farm: a node consumes the BullMQ queue PREVIEW_FARM_QUEUE beside its local queue.

No Qt here: the farm runs on whatever asyncio loop the node runs (qasync in the app, plain asyncio in tests).
See docs/farm.md for the protocol, the settings and why they are what they are.
"""
