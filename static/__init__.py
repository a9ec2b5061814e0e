"""The dashboard (no build step), shipped as the package data ``nexq.static``.

This file only makes ``nexq.static`` a regular package, so that
``importlib.resources.files("nexq.static")`` finds the dashboard in an
editable install too (see ``nexq.api.app.find_static_dir``).
"""
