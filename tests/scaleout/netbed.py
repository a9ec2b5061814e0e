"""A multi-host test bed made of Linux network namespaces (needs root and ``ip``).

``NetBed(["a", "b"])`` makes one namespace per host, ``nxq-<rand>-a`` and so
on, each with ``lo`` up and one interface ``eth0`` holding an address of a
private /24 (``10.213.<rand>.0/24`` by default). Every ``eth0`` is one end of
a veth pair whose other end is a port of a bridge living in a namespace of
its own (``nxq-<rand>-br``), so the hosts reach each other and nothing else:

* nothing is added to the root namespace except the namespace files
  themselves (links are created from inside the bridge namespace and their
  peers placed straight into the host namespaces);
* no namespace has a default route or any address outside the subnet
  (IPv6 is switched off in every namespace, so not even link-local
  addresses appear);
* with ``egress_counters=True`` an nftables counter in each namespace
  counts every packet sent to a destination outside the subnet (it should
  stay at 0; ``egress_packets()`` reads them).

The test process stays in the root namespace and cannot reach 10.x
addresses; ``Host.forward()`` runs a small forwarder inside a host that
exposes one TCP address of the bed as a Unix socket in a temporary
directory (path-based Unix sockets are not per network namespace), so the
test, or a benchmark, can use ordinary clients (httpx, redis-py) on it.

Closing the bed (the context manager's exit, also when the body raised)
kills every process it started and every process still inside its
namespaces, then deletes the namespaces, which destroys their links. It does
not depend on pytest: benchmarks may use it too::

    with NetBed(["store", "w1"], egress_counters=True) as bed:
        store = bed["store"]
        store.popen(["redis-server", "--bind", store.addr, "--protected-mode", "no"], log="store.log")
        sock = bed["w1"].forward(store.addr, 6379)  # reachable from here as a Unix socket
        redis.Redis(unix_socket_path=sock).ping()
        bed["w1"].link_down()                       # w1 is cut off until link_up()
        assert not any(bed.egress_packets().values())

Only a bed whose own process was SIGKILLed leaves namespaces behind
(``ip netns list``, names ``nxq-<hex>-*``; ``ip netns delete NAME``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

IFACE = "eth0"  # each host's only link besides lo
BRIDGE = "br0"
GUARD_TABLE = "nxqguard"  # nftables table holding the egress counters
FORWARDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "uds_forward.py")
_NAME = re.compile(r"^[a-z0-9]{1,8}$")  # bridge-side port "v-<name>" must fit IFNAMSIZ (15)


class NetBedError(RuntimeError):
    """A command that builds, changes or inspects the bed failed."""


def ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip [-n NETNS] ARGS``; its stdout, or NetBedError with its stderr."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    return _check(argv)


def _check(argv: Sequence[str], input: str | None = None, timeout: float = 30) -> str:
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise NetBedError(f"{argv[0]} is not installed (Debian: iproute2 / nftables)") from None
    if done.returncode != 0:
        raise NetBedError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    # `ip netns exec` execs the command (no fork), so a Popen's pid is the command's.
    return ["ip", "netns", "exec", netns, *argv]


def _as_host(netns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` inside ``netns`` whose host name (its own UTS namespace) is
    ``netns``: what a process there reports as its machine. unshare and sh
    both exec, so the pid is still the command's."""
    set_name = 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"'
    return _in_netns(netns, ["unshare", "--uts", "sh", "-c", set_name, netns, *argv])


class Host:
    """One namespace of the bed: ``addr`` on ``eth0``, processes run inside it."""

    def __init__(self, bed: NetBed, name: str, netns: str, addr: str) -> None:
        self.bed, self.name, self.netns, self.addr = bed, name, netns, addr
        self.procs: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"Host({self.name!r}, netns={self.netns!r}, addr={self.addr!r})"

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              log: str | None = None, cwd: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside this host, in a process group of its own; its
        host name (``socket.gethostname()``) is ``self.netns``.

        ``env`` replaces the environment (None: inherit ours); ``log`` is a
        file receiving stdout and stderr (appended; None: discarded). The bed
        kills the process group when it closes.
        """
        out: Any = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                _as_host(self.netns, argv), env=dict(env) if env is not None else None, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            if log:
                out.close()  # the child holds its own copy
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], *, timeout: float = 30, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a short command inside this host and wait; output captured as text.

        With ``check`` a non-zero exit raises NetBedError (with stderr)."""
        done = subprocess.run(_as_host(self.netns, argv), capture_output=True, text=True,
                              timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise NetBedError(f"{' '.join(argv)} in {self.netns} exited {done.returncode}: "
                              f"{done.stderr.strip()}")
        return done

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` to ``proc`` and wait for it; SIGKILL its group after ``timeout``.

        Returns the exit status (negative: killed by that signal)."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            return proc.wait()

    def link_down(self) -> None:
        """Cut this host off the bed: its ``eth0`` goes down (as a pulled cable
        would, from inside the host: its sockets stay open, packets go nowhere)."""
        ip("link", "set", IFACE, "down", netns=self.netns)

    def link_up(self) -> None:
        """Reconnect this host (undo ``link_down``; its address and route come back)."""
        ip("link", "set", IFACE, "up", netns=self.netns)

    def forward(self, addr: str, port: int, *, timeout: float = 10) -> str:
        """A Unix socket path whose connections this host forwards to ``addr:port``.

        The forwarder runs inside this host, so the bed sees connections from
        ``self.addr``. Returns once the socket exists; raises NetBedError if
        the forwarder exits first."""
        path = os.path.join(self.bed.tmpdir, f"{self.name}-{addr}-{port}.sock")
        proc = self.popen([sys.executable, FORWARDER, path, addr, str(port)],
                          log=os.path.join(self.bed.tmpdir, f"forward-{self.name}-{port}.log"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return path
            if proc.poll() is not None:
                raise NetBedError(f"forwarder to {addr}:{port} in {self.netns} exited {proc.returncode}")
            time.sleep(0.02)
        raise NetBedError(f"forwarder to {addr}:{port} in {self.netns} not ready within {timeout} s")


class NetBed:
    """Hosts in network namespaces joined by a bridge; see the module docstring.

    ``names``: short host names (``[a-z0-9]{1,8}``, unique). ``subnet``: a
    private IPv4 network (default ``10.213.<random>.0/24``); host i gets the
    network address + 10 + i. Raises ValueError for names that do not fit.
    Use as a context manager, or call ``start()`` and ``close()``.
    """

    def __init__(self, names: Sequence[str], *, subnet: str | None = None,
                 egress_counters: bool = False) -> None:
        if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
            raise ValueError(f"host names must be unique and match {_NAME.pattern}: {names!r}")
        self.tag = f"nxq-{secrets.token_hex(3)}"
        self.subnet = ipaddress.IPv4Network(subnet or f"10.213.{secrets.randbelow(256)}.0/24")
        if len(names) > self.subnet.num_addresses - 12:  # .0-.9 and broadcast stay unused
            raise ValueError(f"{len(names)} hosts do not fit in {self.subnet}")
        self.bridge_netns = f"{self.tag}-br"
        self.egress_counters = egress_counters
        self.tmpdir = ""
        base = self.subnet.network_address
        self.hosts: dict[str, Host] = {
            n: Host(self, n, f"{self.tag}-{n}", str(base + 10 + i)) for i, n in enumerate(names)
        }
        self._made: list[str] = []  # namespaces created so far, for close()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the bed: the hosts' and the bridge's."""
        return [self.bridge_netns, *(h.netns for h in self.hosts.values())]

    def __enter__(self) -> NetBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        errors = self.close()
        if errors and exc[0] is None:
            raise NetBedError("; ".join(errors))

    # -- building ------------------------------------------------------------------

    def start(self) -> None:
        """Create the namespaces, bridge and links. On failure, undo and re-raise."""
        if os.geteuid() != 0:
            raise NetBedError("a NetBed needs root (it creates network namespaces)")
        if shutil.which("ip") is None:
            raise NetBedError("ip is not installed (Debian package iproute2)")
        if self.egress_counters and shutil.which("nft") is None:
            raise NetBedError("nft is not installed (Debian package nftables)")
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.tag}-")
        try:
            self._add_netns(self.bridge_netns)
            ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0",
               netns=self.bridge_netns)
            ip("link", "set", BRIDGE, "up", netns=self.bridge_netns)
            for h in self.hosts.values():
                self._add_host(h)
            if self.egress_counters:
                self._add_counters()
        except BaseException:
            self.close()
            raise

    def _add_netns(self, netns: str) -> None:
        ip("netns", "add", netns)
        self._made.append(netns)
        if os.path.exists("/proc/sys/net/ipv6"):
            # No IPv6 at all: otherwise every link gets an fe80:: address and
            # sends router solicitations, i.e. addresses outside the subnet.
            # Set before the links exist so "default" applies to them.
            self._sh(netns, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
                            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
        ip("link", "set", "lo", "up", netns=netns)

    def _add_host(self, h: Host) -> None:
        self._add_netns(h.netns)
        port = f"v-{h.name}"
        # Created from inside the bridge namespace with its peer sent straight
        # to the host: the root namespace never holds either end.
        ip("link", "add", port, "type", "veth", "peer", "name", IFACE, "netns", h.netns,
           netns=self.bridge_netns)
        ip("link", "set", port, "master", BRIDGE, "up", netns=self.bridge_netns)
        ip("addr", "add", f"{h.addr}/{self.subnet.prefixlen}", "dev", IFACE, netns=h.netns)
        ip("link", "set", IFACE, "up", netns=h.netns)

    def _add_counters(self) -> None:
        net = str(self.subnet)
        host_rules = (
            f"table inet {GUARD_TABLE} {{ chain egress {{ type filter hook output priority 0; policy accept;\n"
            f'  oifname != "lo" ip daddr != {net} counter\n'
            f'  oifname != "lo" meta nfproto ipv6 counter\n}}\n}}\n'
        )
        # The bridge namespace forwards frames without routing them: count
        # the ones carrying IPv4 to outside the subnet, or any IPv6.
        bridge_rules = (
            f"table bridge {GUARD_TABLE} {{ chain forwarded {{ type filter hook forward priority 0; policy accept;\n"
            f"  ether type ip ip daddr != {net} counter\n"
            f"  ether type ip6 counter\n}}\n}}\n"
        )
        for netns in self.namespaces:
            rules = bridge_rules if netns == self.bridge_netns else host_rules
            _check(_in_netns(netns, ["nft", "-f", "-"]), input=rules)

    def _sh(self, netns: str, script: str) -> None:
        _check(_in_netns(netns, ["sh", "-c", script]))

    # -- observing ---------------------------------------------------------------

    def egress_packets(self) -> dict[str, int]:
        """Per namespace, packets counted as leaving for outside the subnet
        (needs ``egress_counters=True``): all zeros when nothing escaped."""
        counts = {}
        for netns in self.namespaces:
            family = "bridge" if netns == self.bridge_netns else "inet"
            data = json.loads(_check(_in_netns(netns, ["nft", "-j", "list", "table", family, GUARD_TABLE])))
            counts[netns] = sum(
                expr["counter"]["packets"]
                for item in data["nftables"] if "rule" in item
                for expr in item["rule"]["expr"] if "counter" in expr
            )
        return counts

    def foreign_config(self) -> dict[str, list[str]]:
        """Per namespace, addresses and routes that are not the subnet's or
        loopback's (a default route among them): empty lists when isolated."""
        out: dict[str, list[str]] = {}
        for netns in self.namespaces:
            bad = []
            for link in json.loads(ip("-j", "addr", "show", netns=netns)):
                for a in link.get("addr_info", []):
                    addr = ipaddress.ip_address(a["local"])
                    if not (addr in self.subnet or (addr.is_loopback and link["ifname"] == "lo")):
                        bad.append(f"address {a['local']} on {link['ifname']}")
            for family in ("-4", "-6"):
                for r in json.loads(ip("-j", family, "route", "show", "table", "all", netns=netns)):
                    dst = r.get("dst", "")
                    if dst == "default" or not _inside(dst, self.subnet):
                        bad.append(f"route {dst} dev {r.get('dev')} table {r.get('table', 'main')}")
            out[netns] = bad
        return out

    def leftovers(self) -> list[str]:
        """The bed's namespaces that still exist (after ``close()``: none)."""
        listed = ip("netns", "list")
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return [n for n in self.namespaces if n in names]

    # -- teardown ----------------------------------------------------------------

    def close(self) -> list[str]:
        """Kill every process of the bed, delete its namespaces and temp dir.

        Idempotent; never raises: returns what could not be undone."""
        errors: list[str] = []
        procs = [p for h in self.hosts.values() for p in h.procs]
        for p in procs:
            if p.poll() is None:
                _killpg(p.pid)
        # Anything else still inside our namespaces was started from one of
        # our processes (a daemonised child, a new session): kill it too,
        # or the namespace would outlive its name.
        for netns in self._made:
            try:
                for pid in ip("netns", "pids", netns).split():
                    _kill(int(pid))
            except NetBedError as exc:
                errors.append(str(exc))
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                errors.append(f"pid {p.pid} did not die")
        # Hosts first (each takes its veth pair with it), the bridge last.
        for netns in reversed(self._made):
            try:
                ip("netns", "delete", netns)
            except NetBedError as exc:
                errors.append(str(exc))
        self._made.clear()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        for e in errors:
            warnings.warn(f"NetBed teardown: {e}", RuntimeWarning, stacklevel=2)
        return errors


def _inside(dst: str, subnet: ipaddress.IPv4Network) -> bool:
    """Whether a route destination (address or prefix) lies in ``subnet`` or loopback."""
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return False
    if net.version == 4 and (net.subnet_of(subnet) or net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))):
        return True
    return net.version == 6 and net.subnet_of(ipaddress.IPv6Network("::1/128"))


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def unreachable_from(host: Host, addr: str = "1.1.1.1", port: int = 80) -> int:
    """Try to connect from inside ``host`` to an address outside the bed;
    the errno it got (ENETUNREACH when there is no route out), or 0 if it
    connected."""
    code = (
        "import errno, socket, sys\n"
        "s = socket.socket(); s.settimeout(3)\n"
        f"try: s.connect(({addr!r}, {port})); print(0)\n"
        "except OSError as e: print(e.errno or -1)\n"
    )
    return int(host.run([sys.executable, "-c", code]).stdout.strip())


__all__ = ["Host", "NetBed", "NetBedError", "ip", "unreachable_from"]
