"""Finding the ``nexq run`` that holds an embedded data directory.

The embedded store lives inside one process (the journal's lock keeps out
every other), so ``nexq tasks`` / ``nexq enqueue`` cannot open a data
directory while ``nexq run`` serves it. ``nexq run`` therefore writes its
API's URL to ``<data_dir>/server.json`` once listening and removes it at
exit; the CLI reads it only while the directory is locked, so a file left by
a killed process is never followed.
"""

from __future__ import annotations

import ipaddress
import json
import os

from ..store.journal import Journal

SERVER_FILE = "server.json"


def api_url(host: str, port: int) -> str:
    """The URL a local client reaches a server bound to ``host:port`` at
    (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{port}"


def write_server_file(data_dir: str, url: str) -> str:
    """Record ``url`` as the API serving ``data_dir``; returns the file's path."""
    path = os.path.join(data_dir, SERVER_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)
    os.replace(tmp, path)  # readers never see half a file
    return path


def remove_server_file(path: str) -> None:
    """Remove the file if this process wrote it (a newer server may own it now)."""
    try:
        with open(path) as f:
            ours = json.load(f).get("pid") == os.getpid()
        if ours:
            os.remove(path)
    except (OSError, ValueError):
        pass


def find_server(data_dir: str) -> str | None:
    """The API URL of the running ``nexq run`` that holds ``data_dir``, or
    None if no process holds it. Raises LookupError if one holds it but
    left no URL (it serves no API, or is still starting)."""
    if not Journal.locked_by_other(data_dir):
        return None
    try:
        with open(os.path.join(data_dir, SERVER_FILE)) as f:
            url = json.load(f).get("url")
    except (OSError, ValueError):
        url = None
    if isinstance(url, str):
        return url
    raise LookupError(f"{data_dir} is held by a process that left no API URL")
