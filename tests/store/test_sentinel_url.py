"""redis+sentinel:// URLs, the sentinel discovery plan and --store-replicas
validation: no server needed."""

from __future__ import annotations

from typing import Any

import pytest

from nexq.config import ConfigError, Settings
from nexq.errors import InvalidStoreURL, StoreResponseError, StoreUnavailable
from nexq.store.replicas import check_acks, check_replicas
from nexq.store.resp_commands import ReplyError
from nexq.store.sentinel import Probe, locate_sync
from nexq.store.url import parse_store_url, split_store_urls


def test_sentinel_url_names_the_sentinels_the_primary_and_the_passwords() -> None:
    url = parse_store_url("redis+sentinel://:s3cret@a:26380,b/mymaster?sentinel_password=sp")
    assert url.sentinel and not url.tls
    assert url.hosts == (("a", 26380), ("b", 26379))
    assert url.path == "mymaster"
    assert url.password == "s3cret" and url.sentinel_password == "sp"
    assert str(url) == "redis+sentinel://:***@a:26380,b:26379/mymaster"
    assert "s3cret" not in repr(url) and "sp" not in repr(url).replace("sentinel", "")
    assert parse_store_url("rediss+sentinel://s1/m").tls


def test_a_sentinel_url_is_one_node_of_a_store_list() -> None:
    nodes = split_store_urls("redis+sentinel://a:1,b:2/m,redis://c:6379")
    assert [str(n) for n in nodes] == ["redis+sentinel://a:1,b:2/m", "redis://c:6379"]
    assert nodes[0].node_name == "sentinel:m"


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://a:1,b:2", "needs the monitored primary's name"),
    ("redis+sentinel://a:1/m/x", "needs the monitored primary's name"),
    ("redis+sentinel://a:port/m", "bad address 'a:port'"),
    ("redis+sentinel://a:1,,b/m", "bad address ''"),
    ("redis+sentinel://a:99999/m", "bad address 'a:99999'"),
    ("redis+sentinel://a,a:26379/m", "more than once"),
])
def test_bad_sentinel_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(InvalidStoreURL, match=says):
        parse_store_url(url)


def scripted(answers: dict[tuple[str, int, str], Any], seen: list[Probe] | None = None) -> Any:
    """A probe answering from ``answers`` by (host, port, first command);
    a StoreUnavailable for any server not listed (it is down)."""
    def probe(p: Probe) -> list[Any]:
        if seen is not None:
            seen.append(p)
        key = (p.url.host, p.url.port, p.commands[0][0])
        if key not in answers:
            raise StoreUnavailable(f"cannot connect to {p.url.host}:{p.url.port}: Connection refused")
        return [answers[key]]
    return probe


def test_discovery_asks_the_next_sentinel_when_one_is_down_or_names_a_replica() -> None:
    url = parse_store_url("redis+sentinel://:pw@s1:1,s2:2,s3:3/m?sentinel_password=spw")
    seen: list[Probe] = []
    probe = scripted(seen=seen, answers={
        ("s2", 2, "SENTINEL"): [b"10.0.0.1", b"7000"],   # names the old primary, now a replica
        ("10.0.0.1", 7000, "ROLE"): [b"slave", b"10.0.0.2", 7001, b"connected", 1],
        ("s3", 3, "SENTINEL"): [b"10.0.0.2", b"7001"],
        ("10.0.0.2", 7001, "ROLE"): [b"master", 0, []],
    })
    primary = locate_sync(url, probe)
    assert (primary.scheme, primary.host, primary.port, primary.password) == ("redis", "10.0.0.2", 7001, "pw")
    # Sentinels get the sentinel password, data nodes the URL's own.
    assert [(p.url.port, p.url.password, p.commands[0][0]) for p in seen] == [
        (1, "spw", "SENTINEL"), (2, "spw", "SENTINEL"), (7000, "pw", "ROLE"), (3, "spw", "SENTINEL"),
        (7001, "pw", "ROLE")]


def test_no_primary_found_names_what_each_sentinel_said() -> None:
    url = parse_store_url("redis+sentinel://s1:1,s2:2/m")
    probe = scripted({("s2", 2, "SENTINEL"): None})
    with pytest.raises(StoreUnavailable) as err:
        locate_sync(url, probe)
    text = str(err.value)
    assert "no primary named 'm' found" in text
    assert "sentinel s1:1: cannot connect to s1:1" in text
    assert "sentinel s2:2 does not know a primary named 'm'" in text


def test_replicas_are_refused_where_nothing_replicates() -> None:
    with pytest.raises(InvalidStoreURL, match="pogocache:// has no replicas"):
        check_replicas(1, parse_store_url("pogocache://127.0.0.1:9401"))
    with pytest.raises(ValueError, match="whole number >= 0"):
        check_replicas(-1)
    assert check_replicas(0, parse_store_url("pogocache://h")) == 0
    for store in ("pogocache://127.0.0.1:9401", None):
        settings = Settings.load({"store": store, "store_replicas": 1}, env={})
        with pytest.raises(InvalidStoreURL, match=r"--store-replicas=1: (pogocache|memory):// has no replicas"):
            _ = settings.store_nodes
    with pytest.raises(ConfigError, match="NEXQ_STORE_REPLICAS='-2': must be a whole number"):
        Settings.load({}, env={"NEXQ_STORE_REPLICAS": "-2"})
    ok = Settings.load({"store": "redis+sentinel://a/m"}, env={"NEXQ_STORE_REPLICAS": "2"})
    assert ok.store_options()["replicas"] == 2 and len(ok.store_nodes) == 1


def test_too_few_acknowledgements_raise_store_unavailable() -> None:
    check_acks(2, 2, "s")
    with pytest.raises(StoreUnavailable, match="only 1 of 2 replicas acknowledged"):
        check_acks(1, 2, "s")
    with pytest.raises(StoreResponseError, match="ERR WAIT"):
        check_acks(ReplyError("ERR WAIT cannot be used with replica instances"), 1, "s")
