"""Issue 17: what a peer with a valid certificate may write. A frame brings its sender's own
figures and those of nodes not live here: a peer cannot raise another live node's spend, grow a
budget's pool by saying another node gave rights back, ask for rights in another's name, or evict
another node by saying it left, or store a cache entry the key's owner did not ask it to fetch.
The rogue peer here holds node-3's real certificate."""
import os
import socket
import ssl
import struct
import time

import requests

from conftest import eventually
from test_accounting import cost_nanos
from test_cluster import AUTH, BUDGET, CHAT, budget_spent, cluster, status  # noqa: F401 (fixture)


# The peer wire format (Sources/GateMeshCore/Binary/BinaryCoding.swift, Sources/GateMeshCluster):
# LEB128 unsigned numbers, zigzag signed ones, length-prefixed UTF-8 strings; frames are "GM",
# version 2, a kind byte and a 4-byte big-endian length.
def uint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def sint(v):
    return uint(((v << 1) ^ (v >> 63)) & (2**64 - 1))


def string(s):
    b = s.encode()
    return uint(len(b)) + b


def frame(kind, payload):
    return b"GM" + bytes([2, kind]) + struct.pack(">I", len(payload)) + payload


COUNTERS, MEMBERSHIP, CACHE_PUT = 2, 1, 7


def cache_put(key, body):
    """A cached answer for `key` (CachedResponseCodec): gateway, provider, status, headers, body,
    chunk ends, streamed, created, expires, cost, served model."""
    now = int(time.time() * 1000)
    p = string(key) + string("default") + string("openai") + uint(200)
    p += uint(1) + string("content-type") + string("application/json")
    p += uint(len(body)) + body + uint(0) + bytes([0]) + sint(now) + sint(now + 3_600_000) + bytes([0]) + sint(0) + string("")
    return frame(CACHE_PUT, p)


def counters(rule, bucket, spent, returned=()):
    """One counter entry: spent slots {node id: nanos}, no reservations, rights with only
    `returned` {holder: amount}."""
    p = uint(1) + string(rule) + string("") + sint(bucket)
    p += uint(len(spent)) + b"".join(string(n) + sint(v) for n, v in spent.items())
    p += uint(0)  # reserved
    p += uint(0)  # granted
    p += uint(0) + uint(0)  # used, refunded
    p += uint(len(returned)) + b"".join(string(h) + sint(v) for h, v in returned)
    p += uint(0)  # leases
    return frame(COUNTERS, p)


def info(m):
    return string(m["name"]) + string(m["peer_address"]) + string(m.get("region") or "") + string(m["node_id"]) + \
        string(m.get("gateways_digest") or "")


def blob(b):
    return uint(len(b)) + b


ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3


def forged(sender, about, state, incarnation, signature=b"\x30" * 70):
    """A ping from `sender` (its own record unsigned: the connection's certificate vouches for it)
    carrying the update "`about` is `state` at `incarnation`", with a signature that is not
    `about`'s (MembershipCodec: envelope = sender's record, incarnation, signature, message,
    updates; update = record, state, incarnation, accuser, signature)."""
    p = info(sender) + uint(sender["incarnation"]) + blob(b"") + bytes([1]) + uint(0) + string("")
    p += uint(1) + info(about) + bytes([state]) + uint(incarnation) + string(sender["name"]) + blob(signature)
    return frame(MEMBERSHIP, p)


def rogue_link(c, node, as_name):
    certs = os.path.join(c.run_dir, "certs")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(os.path.join(certs, "ca.pem"))
    ctx.load_cert_chain(os.path.join(certs, f"{as_name}.pem"), os.path.join(certs, f"{as_name}.key"))
    host, port = c.peer_address(node).rsplit(":", 1)
    return ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5), server_hostname=host)


def by_node(c, i):
    budgets = status(c, i)["budgets"]
    return {b["name"]: int(b["spent"].replace(".", "")) for b in budgets[0]["by_node"]} if budgets else {}


def test_a_peer_with_a_valid_certificate_cannot_write_another_nodes_figures_plant_cache_entries_or_evict_it(cluster):
    c = cluster(3, BUDGET)
    eventually(lambda: [status(c, i)["cluster"]["size"] for i in range(3)], lambda s: s == [3, 3, 3], timeout=15,
               what="three nodes")
    cost = cost_nanos("openai", "gpt-4o-mini", 4, 16)
    assert requests.post(c.node_url(1) + "/openai/chat/completions", json=CHAT, timeout=10).status_code == 200
    eventually(lambda: budget_spent(c, 0), lambda s: s == cost, what="node-2's spend on node-1")
    before = status(c, 0)
    members = {m["name"]: m for m in before["members"]}
    budget = before["budgets"][0]
    rule, pool = budget["rule"], int(budget["pool"].replace(".", ""))
    bucket = int(time.time() // 86400) * 86_400_000  # a calendar day in UTC starts its bucket
    node2, node3 = members["node-2"], members["node-3"]

    link = rogue_link(c, 0, "node-3")
    # node-3's own slot (taken: proof the frame was read), node-2's slot raised by $1,000 and a
    # "return" of $1,000 of rights by node-2's run (both dropped: node-2 is live and sends its own).
    link.sendall(counters(rule, bucket, {node3["node_id"]: 7_000, node2["node_id"]: 10**12},
                          returned=[(node2["node_id"] + "/1", 10**12), (node2["node_id"] + "/2", 10**12)]))
    seen = eventually(lambda: by_node(c, 0), lambda b: b.get("node-3") == 7_000, what="node-3's own figure taken")
    assert seen["node-2"] == cost, seen
    assert budget_spent(c, 0) == cost + 7_000
    assert int(status(c, 0)["budgets"][0]["pool"].replace(".", "")) <= pool

    # A cache entry for a key node-1 gave node-3 no lease for: not stored. The counter frame
    # after it, on the same connection, shows when node-1 has read both.
    cached = requests.get(c.node_url(0) + "/api/cache", headers=AUTH, timeout=5).json()
    link.sendall(cache_put("planted-key", b'{"planted": true}'))
    link.sendall(counters(rule, bucket, {node3["node_id"]: 8_000}))
    eventually(lambda: by_node(c, 0), lambda b: b.get("node-3") == 8_000, what="the frame after the cache entry read")
    after = requests.get(c.node_url(0) + "/api/cache", headers=AUTH, timeout=5).json()
    assert after["memory"]["entries"] == cached["memory"]["entries"], (cached, after)
    assert after["stored"] == cached["stored"], (cached, after)

    # Records about node-2 and node-1 that they did not sign: node-1 drops every one. "node-2
    # left" (only a node says it leaves, and only in its own signed record), "node-2 is dead" at
    # an incarnation it never had (which it could only refute past), "node-2 moved to the rogue's
    # address", "node-1 is suspect" far ahead, and a made-up member with node-1's id (which would
    # stop node-1 as a copy of it). The counter frame after them shows when they were read.
    inc2 = node2["incarnation"]
    moved = dict(node2, peer_address="127.0.0.1:1")
    ghost = dict(node3, name="ghost", node_id=members["node-1"]["node_id"])
    for f in [forged(node3, node2, LEFT, inc2 + 5), forged(node3, node2, DEAD, inc2 + 10**6), forged(node3, moved, ALIVE, inc2 + 1),
              forged(node3, members["node-1"], SUSPECT, 10**12), forged(node3, ghost, ALIVE, 1)]:
        link.sendall(f)
    link.sendall(counters(rule, bucket, {node3["node_id"]: 9_000}))
    eventually(lambda: by_node(c, 0), lambda b: b.get("node-3") == 9_000, what="the frame after the forged records read")
    now = status(c, 0)
    me = next(m for m in now["members"] if m.get("self"))
    # Four: the made-up member is not counted, it waits for a certificate no peer holds.
    assert me["forged_records"] == 4, me
    assert me["incarnation"] < 10**12, me
    seen2 = next(m for m in now["members"] if m["name"] == "node-2")
    assert seen2["status"] == "alive" and seen2["incarnation"] == inc2 and seen2["peer_address"] == node2["peer_address"], seen2
    assert "ghost" not in [m["name"] for m in now["members"]]
    assert all(m["status"] == "alive" for m in now["members"])
    assert requests.post(c.node_url(0) + "/openai/chat/completions", json=CHAT, timeout=10).status_code == 200
    with open(os.path.join(c.run_dir, "node-1", "node.log")) as f:
        log = f.read()
    assert "left" not in [m["status"] for m in status(c, 2)["members"]]
    link.close()
    assert "dropped a malformed peer frame" not in log, log[-2000:]
    assert "refusing to run" not in log, log[-2000:]
    assert "dropped membership records that their member did not sign" in log, log[-2000:]
