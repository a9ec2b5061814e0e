"""The test bed itself: isolated, connected, cut and reconnected, cleaned up.

These keep ``test_multihost``'s evidence honest: the isolation checks do
flag a route out and a packet sent outside, and teardown does remove
everything, even when the body raised and a process escaped its group.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import closing

import httpx
import pytest

from tests.scaleout.cluster import wait_for
from tests.scaleout.netbed import NetBed, ip, unreachable_from

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the test bed creates network namespaces"),
    pytest.mark.slow,
]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def _web_server(bed: NetBed, name: str) -> httpx.Client:
    """An HTTP server on host ``name`` port 8000, and a client reaching it via host x."""
    host = bed[name]
    host.popen([sys.executable, "-m", "http.server", "--bind", host.addr, "8000", "--directory", bed.tmpdir])
    client = httpx.Client(transport=httpx.HTTPTransport(uds=bed["x"].forward(host.addr, 8000)),
                          base_url="http://bed", timeout=5)
    wait_for(lambda: client.get("/").status_code == 200, 15, f"http.server on {name}")
    return client


def test_bed_is_isolated_and_gone_after_a_failing_body() -> None:
    root_before = ip("-o", "link")
    escaped = 0
    with pytest.raises(RuntimeError, match="the test failed"):
        with NetBed(["a", "x"], egress_counters=True) as bed:
            assert ip("-o", "link") == root_before
            assert bed.foreign_config() == {ns: [] for ns in bed.namespaces}
            assert unreachable_from(bed["a"]) == errno.ENETUNREACH
            with closing(_web_server(bed, "a")) as client:  # a serves, x forwards: they reach each other
                assert client.get("/").status_code == 200
            # A process that leaves its process group still dies with the bed.
            pidfile = os.path.join(bed.tmpdir, "escaped.pid")
            bed["a"].popen(["sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; wait"])
            escaped = int(wait_for(lambda: open(pidfile).read().strip(), 5, "escaped sleep"))
            assert _alive(escaped)
            raise RuntimeError("the test failed")
    assert bed.leftovers() == []
    assert ip("-o", "link") == root_before
    wait_for(lambda: not _alive(escaped), 5, "the escaped process to die")


def test_link_down_cuts_a_host_off_until_link_up() -> None:
    with NetBed(["a", "x"]) as bed, closing(_web_server(bed, "a")) as client:
        bed["x"].link_down()  # x can no longer reach a: the forwarder's connect fails
        with pytest.raises(httpx.TransportError):
            client.get("/")
        bed["x"].link_up()
        assert wait_for(lambda: client.get("/").status_code == 200, 10, "a reachable again")


def test_isolation_checks_see_a_route_out_and_a_packet_sent_outside() -> None:
    with NetBed(["a"], egress_counters=True) as bed:
        a = bed["a"]
        ip("route", "add", "default", "dev", "eth0", netns=a.netns)
        assert bed.foreign_config()[a.netns] == ["route default dev eth0 table main"]
        # With a route out, a datagram to a documentation address leaves a
        # (it is counted on output, before the neighbour lookup fails).
        a.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                                     ".sendto(b'x', ('192.0.2.1', 9))"])
        counts = wait_for(lambda: (c := bed.egress_packets())[a.netns] and c, 5, "the counter to move")
        assert counts[a.netns] >= 1 and counts[bed.bridge_netns] == 0
    assert bed.leftovers() == []
