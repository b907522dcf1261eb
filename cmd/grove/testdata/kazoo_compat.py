"""kazoo against a Grove cluster: the ZooKeeper client protocol, unchanged.

Usage: kazoo_compat.py host:port[,host:port...]
Exits non-zero (with a traceback) on the first failure; prints OK at the end.
"""
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, LockTimeout, NoNodeError, NodeExistsError, RolledBackError

hosts = sys.argv[1]


def client():
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=20)
    return zk


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


zk = client()
version = zk.server_version()
assert version[0] == 3 and version[1] >= 5, version
print("server version", version)

# The source document's example.
zk.ensure_path("/my/favorite")
zk.create("/my/favorite/node", b"a value")
data, stat = zk.get("/my/favorite/node")
assert data == b"a value" and stat.version == 0, (data, stat)
zk.set("/my/favorite/node", b"another value")
data, stat = zk.get("/my/favorite/node")
assert data == b"another value" and stat.version == 1, (data, stat)
assert zk.get_children("/my/favorite") == ["node"]
try:
    zk.set("/my/favorite/node", b"x", version=0)
    raise AssertionError("a stale set succeeded")
except BadVersionError:
    pass
try:
    zk.create("/my/favorite/node", b"")
    raise AssertionError("a duplicate create succeeded")
except NodeExistsError:
    pass
zk.delete("/my/favorite/node")
assert zk.exists("/my/favorite/node") is None
try:
    zk.get("/my/favorite/node")
    raise AssertionError("read a deleted node")
except NoNodeError:
    pass

# Ephemeral and ephemeral-sequential nodes vanish with their session.
other = client()
other.create("/eph", b"e", ephemeral=True)
seq = other.create("/eph-seq-", b"", ephemeral=True, sequence=True)
assert seq.startswith("/eph-seq-") and len(seq) == len("/eph-seq-") + 10, seq
zk.sync("/eph")  # another session wrote it: ZooKeeper only promises our own writes without a sync
assert zk.exists("/eph").ephemeralOwner == other.client_id[0]
other.stop()
other.close()
wait_for(lambda: zk.exists("/eph") is None and zk.exists(seq) is None, "ephemerals to vanish")

# Lock: one holder at a time.
a, b = client(), client()
lock_a, lock_b = a.Lock("/lock", "a"), b.Lock("/lock", "b")
assert lock_a.acquire(timeout=10)
try:
    lock_b.acquire(timeout=0.5)
    raise AssertionError("two lock holders")
except LockTimeout:
    pass
b.sync("/lock")
assert lock_b.contenders() == ["a"], lock_b.contenders()
lock_a.release()
assert lock_b.acquire(timeout=10)
lock_b.release()

# Election: the first candidate leads, the next takes over when it leaves.
led = []
leave = threading.Event()


def lead_a():
    led.append("a")
    leave.wait(20)


ea = a.Election("/election", "a")
ta = threading.Thread(target=ea.run, args=(lead_a,))
ta.start()
wait_for(lambda: led == ["a"], "a to lead")
eb = b.Election("/election", "b")
tb = threading.Thread(target=eb.run, args=(lambda: led.append("b"),))
tb.start()
time.sleep(0.3)
assert led == ["a"], led
leave.set()
ta.join(10)
tb.join(10)
assert led == ["a", "b"], led

# Queue and LockingQueue.
q = zk.Queue("/queue")
q.put(b"one")
q.put(b"two")
assert len(q) == 2
assert q.get() == b"one" and q.get() == b"two" and q.get() is None
lq = zk.LockingQueue("/lqueue")
lq.put(b"job")
assert lq.get(timeout=5) == b"job"
assert lq.consume()
assert len(lq) == 0

# Counter (compare-and-set on the version).
counter = zk.Counter("/counter")
counter += 5
counter -= 2
assert counter.value == 3, counter.value
counter_b = b.Counter("/counter")
counter_b += 10
zk.sync("/counter")
assert counter.value == 13, counter.value

# Barrier.
barrier = zk.Barrier("/barrier")
barrier.create()
b.sync("/barrier")
assert not b.Barrier("/barrier").wait(0.3)
released = threading.Event()
threading.Thread(target=lambda: b.Barrier("/barrier").wait(10) and released.set()).start()
barrier.remove()
assert released.wait(10)

# DataWatch and ChildrenWatch.
seen_data, seen_children = [], []
zk.ensure_path("/watched")


@zk.DataWatch("/watched")
def on_data(data, stat):
    seen_data.append(data)


@zk.ChildrenWatch("/watched")
def on_children(children):
    seen_children.append(sorted(children))


b.set("/watched", b"v1")
b.create("/watched/c1")
wait_for(lambda: b"v1" in seen_data, "the data watch")
wait_for(lambda: ["c1"] in seen_children, "the children watch")
b.set("/watched", b"v2")
wait_for(lambda: b"v2" in seen_data, "the data watch to fire again")

# A transaction, and a failed one rolled back.
t = zk.transaction()
t.create("/t1", b"1")
t.create("/t2", b"2")
t.check("/t1", 0)
assert t.commit() == ["/t1", "/t2", True]
t = zk.transaction()
t.create("/t3", b"3")
t.check("/t1", 7)
results = t.commit()
assert isinstance(results[0], RolledBackError) and isinstance(results[1], BadVersionError), results
assert zk.exists("/t3") is None

for c in (a, b, zk):
    c.stop()
    c.close()
print("OK")
