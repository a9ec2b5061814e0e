"""The runtime: what runs in a Nexq process above the queue protocols.

Workers, the scheduler agents, the service that hosts them, the worker
registry, the store guard, doorbells, limits, cron, events and webhooks.
Nothing in ``nexq.queue`` or ``nexq.store`` imports from here: features
plug into the queue layer through the hooks it is given (``nexq.hooks``).
"""
