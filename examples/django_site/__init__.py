"""A minimal Django project whose view enqueues a task (see views.py)."""
