"""Prints what kazoo sees for the requests where Grove once differed from
ZooKeeper 3.8; cmd/grove's TestKazooSideBySide runs it against both and
requires the same lines. Usage: kazoo_diff.py host:port"""
import sys

from kazoo.client import KazooClient


def attempt(label, fn):
    try:
        print(label, "->", repr(fn()))
    except Exception as e:  # the exception class is the observation
        print(label, "raises", type(e).__name__)


zk = KazooClient(hosts=sys.argv[1], timeout=20)
zk.start(timeout=30)
# Null data stays null; empty stays empty.
zk.create("/kd-null", None)
zk.create("/kd-empty", b"")
attempt("get null", lambda: zk.get("/kd-null")[0])
attempt("get empty", lambda: zk.get("/kd-empty")[0])
zk.set("/kd-empty", None)
attempt("get after set None", lambda: zk.get("/kd-empty")[0])
# Invalid paths: reads find nothing, creates check the parent first.
attempt("exists with a control char", lambda: zk.exists("/kd\x01"))
attempt("get with a control char", lambda: zk.get("/kd\x01"))
attempt("children with a control char", lambda: zk.get_children("/kd\x01"))
attempt("create a control char, missing parent", lambda: zk.create("/kd-nope/a\x01"))
attempt("create a control char", lambda: zk.create("/kd\x01"))
attempt("delete a control char", lambda: zk.delete("/kd\x01"))
attempt("set a control char", lambda: zk.set("/kd\x01", b"x"))
# A create that returns its Stat (create2); the fields two servers share.
attempt("create2 stat", lambda: (lambda r: (r[0], r[1].version, r[1].cversion, r[1].dataLength, r[1].numChildren))(
    zk.create("/kd-c2", b"abc", include_data=True)))
# Digest credentials without a colon are accepted.
attempt("add_auth without a colon", lambda: zk.add_auth("digest", "blah"))
attempt("create after it", lambda: zk.create("/kd-after"))
# A transaction's results.
tx = zk.transaction()
tx.create("/kd-tx", b"x")
attempt("transaction", lambda: tx.commit())
zk.stop()
zk.close()
