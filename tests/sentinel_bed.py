"""A Sentinel test bed: one primary, one replica, three sentinels, on free ports.

Every process is a child of the test run (Debian's ``redis-server``; a
sentinel is ``redis-server CONF --sentinel``). Sentinels watch the primary
as ``mymaster`` with quorum 2 and a 1 s ``down-after-milliseconds``, so a
SIGKILLed primary is replaced by its replica within a few seconds.
:meth:`SentinelBed.restore` brings a killed node back as a replica of the
new primary, leaving the bed whole for the next test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import hiredis

from tests.polling import poll
from tests.servers import RedisServer, find_redis_server, free_port

NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
#: port -> password of the bed's servers that have one (command() AUTHs)
PASSWORDS: dict[int, str] = {}


def command(port: int, *args: Any, timeout: float = 1.0) -> Any:
    """One command to 127.0.0.1:``port`` (after AUTH if PASSWORDS has it);
    its reply (error replies as hiredis.ReplyError objects). Raises
    OSError if the server is down."""
    commands = ([("AUTH", PASSWORDS[port])] if port in PASSWORDS else []) + [args]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))
        reader = hiredis.Reader()
        replies: list[Any] = []
        while len(replies) < len(commands):
            if (reply := reader.gets()) is not False:
                replies.append(reply)
                continue
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"127.0.0.1:{port} closed the connection")
            reader.feed(data)
        return replies[-1]


def _answer(port: int, *args: Any) -> Any:
    try:
        return command(port, *args)
    except OSError:
        return None


@attrs.define
class SentinelBed:
    """The running bed (see module doc)."""

    dir: str
    nodes: list[RedisServer]
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen[bytes]] = attrs.field(factory=list)
    password: str | None = None  # the data nodes'
    sentinel_password: str | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        auth = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{hosts}/{NAME}{query}"

    def named_primary(self) -> set[int | None]:
        """The primary's port according to each sentinel (None: no answer)."""
        out: set[int | None] = set()
        for port in self.sentinel_ports:
            reply = _answer(port, "SENTINEL", "get-master-addr-by-name", NAME)
            out.add(int(reply[1]) if isinstance(reply, list) else None)
        return out

    def primary(self) -> RedisServer:
        """The node every sentinel names, once they agree and it is a master."""
        def agreed() -> RedisServer | None:
            named = self.named_primary()
            if len(named) != 1 or None in named:
                return None
            node = self.node(named.pop())
            role = _answer(node.port, "ROLE")
            return node if isinstance(role, list) and role[0] == b"master" else None
        return poll(agreed, limit=20)  # type: ignore[no-any-return]

    def node(self, port: int | None) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def wait_ready(self, limit: float = 30) -> RedisServer:
        """Until the primary has a synced replica and every sentinel knows
        it, the replica and the other sentinels (what a failover needs);
        returns the primary then.

        The primary is looked up again at every check: right after a
        failover, a sentinel that lagged behind may fail over once more, to
        the node just restored as a replica (seen here: it turns master
        about a second after it starts, and the sentinels demote the other
        node some 10 s later). Checking the primary named at the start
        would then wait forever for a replica it no longer has."""
        found: list[RedisServer] = []

        def ready() -> bool:
            named = self.named_primary()
            if len(named) != 1 or None in named:
                return False
            primary = self.node(named.pop())
            info = _answer(primary.port, "INFO", "replication") or b""
            if b"role:master" not in info:
                return False
            if b"connected_slaves:1" not in info or b"state=online" not in info:
                return False
            for port in self.sentinel_ports:
                fields = _answer(port, "SENTINEL", "master", NAME)
                facts = dict(zip(fields[::2], fields[1::2])) if isinstance(fields, list) else {}
                if facts.get(b"num-slaves") != b"1" or facts.get(b"num-other-sentinels") != b"2":
                    return False
                if facts.get(b"flags") != b"master":
                    return False
                replicas = _answer(port, "SENTINEL", "replicas", NAME)
                if not isinstance(replicas, list) or len(replicas) != 1:
                    return False
                facts = dict(zip(replicas[0][::2], replicas[0][1::2]))
                # A replica the sentinels would promote: seen, up, linked.
                if facts.get(b"flags") != b"slave" or facts.get(b"master-link-status") != b"ok":
                    return False
            found[:] = [primary]
            return True

        poll(ready, limit=limit, every=0.05)
        return found[0]

    def cut_replication(self) -> RedisServer:
        """Stop the replica taking the primary's writes (what a slow link
        does): it drops its link and cannot resync (a wrong ``masterauth``)
        until :meth:`mend`. Returns the replica."""
        primary = self.primary()
        replica = next(n for n in self.nodes if n.port != primary.port)
        assert command(replica.port, "CONFIG", "SET", "masterauth", "nexq-cut") == b"OK"
        assert command(replica.port, "CLIENT", "KILL", "TYPE", "master") == 1
        return replica

    def mend(self, replica: RedisServer) -> None:
        assert command(replica.port, "CONFIG", "SET", "masterauth", "") == b"OK"

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary; returns the dead node."""
        primary = self.primary()
        primary.stop(kill=True)
        return primary

    def wait_failover(self, old: RedisServer, limit: float = 30) -> RedisServer:
        """The promoted node, once every sentinel names it and it is a master."""
        def promoted() -> RedisServer | None:
            named = self.named_primary()
            if len(named) != 1 or old.port in named or None in named:
                return None
            return self.primary()
        return poll(promoted, limit=limit, every=0.05)  # type: ignore[no-any-return]

    def restore(self, dead: RedisServer) -> None:
        """Start ``dead`` again as a replica of the current primary and wait
        until the bed is whole again (a full sync, and the sentinels seeing
        the new replica in the primary's INFO, which they read every 10 s
        outside a failover: slow on a loaded machine)."""
        primary = self.primary()
        dead.args = _node_args(primary.port, self.password)
        dead.start()
        self.wait_ready(limit=90)

    def close(self) -> None:
        for proc in self.sentinels:
            proc.kill()
            proc.wait(10)
        for node in self.nodes:
            node.stop(kill=True)


def _node_args(primary_port: int | None, password: str | None = None) -> list[str]:
    # No delay before a full sync (the default waits 5 s for more replicas).
    args = ["--repl-diskless-sync-delay", "0", "--appendonly", "no"]
    args += ["--masterauth", password] if password else []
    return args + (["--replicaof", "127.0.0.1", str(primary_port)] if primary_port else [])


def _start_sentinel(bed: SentinelBed, port: int, primary_port: int) -> subprocess.Popen[bytes]:
    d = bed.dir
    conf = os.path.join(d, f"sentinel-{port}.conf")
    with open(conf, "w") as f:
        if bed.password:
            f.write(f"sentinel auth-pass {NAME} {bed.password}\n")
        if bed.sentinel_password:
            f.write(f"requirepass {bed.sentinel_password}\nsentinel sentinel-pass {bed.sentinel_password}\n")
        f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\n"
                f"logfile {os.path.join(d, f'sentinel-{port}.log')}\n"
                f"sentinel monitor {NAME} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {NAME} 1\n")
    proc = subprocess.Popen([find_redis_server(), conf, "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poll(lambda: _answer(port, "PING") == b"PONG", limit=10)
    return proc


@contextmanager
def sentinel_bed(password: str | None = None, sentinel_password: str | None = None) -> Iterator[SentinelBed]:
    """A ready bed (see module doc), every process killed on exit;
    ``password`` for the data nodes, ``sentinel_password`` for the sentinels."""
    with tempfile.TemporaryDirectory(prefix="nexq-sentinel-") as d:
        first = RedisServer(port=free_port(), dir=os.path.join(d, "a"), args=_node_args(None, password),
                            password=password)
        second = RedisServer(port=free_port(), dir=os.path.join(d, "b"), password=password,
                             args=_node_args(first.port, password))
        bed = SentinelBed(dir=d, nodes=[first, second], sentinel_ports=[free_port() for _ in range(3)],
                          password=password, sentinel_password=sentinel_password)
        for port, secret in [(first.port, password), (second.port, password),
                             *((p, sentinel_password) for p in bed.sentinel_ports)]:
            if secret:
                PASSWORDS[port] = secret
        try:
            for node in bed.nodes:
                os.makedirs(node.dir)
                node.start()
            for port in bed.sentinel_ports:
                bed.sentinels.append(_start_sentinel(bed, port, first.port))
            bed.wait_ready()
            yield bed
        finally:
            bed.close()


@contextmanager
def primary_and_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one synced replica (no sentinels), killed on exit."""
    with tempfile.TemporaryDirectory(prefix="nexq-replica-") as d:
        primary = RedisServer(port=free_port(), dir=os.path.join(d, "a"), args=_node_args(None))
        replica = RedisServer(port=free_port(), dir=os.path.join(d, "b"), args=_node_args(primary.port))
        try:
            for node in (primary, replica):
                os.makedirs(node.dir)
                node.start()
            poll(lambda: b"state=online" in (_answer(primary.port, "INFO", "replication") or b""), limit=20)
            yield primary, replica
        finally:
            for node in (primary, replica):
                if node.proc is not None and node.proc.poll() is None:
                    os.kill(node.proc.pid, signal.SIGCONT)  # a test may have stopped it
                node.stop(kill=True)
