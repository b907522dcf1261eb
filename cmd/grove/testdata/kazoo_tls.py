"""kazoo over TLS (use_ssl) against Grove's ZooKeeper secure port.

Usage: kazoo_tls.py host:port CA CERT KEY SUBJECT
Connects with a client certificate, writes a znode, creates one only the
certificate's x509 identity may read and reads it back, and one only
digest user alice may read. Prints OK at the end; any failure raises.
"""
import sys

from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

hosts, ca, cert, key, subject = sys.argv[1:6]

zk = KazooClient(hosts=hosts, timeout=10, use_ssl=True, verify_certs=True,
                 ca=ca, certfile=cert, keyfile=key)
zk.start(timeout=20)
zk.ensure_path("/tls")
zk.set("/tls", b"over tls")
assert zk.get("/tls")[0] == b"over tls"
zk.create("/tls/x509-owned", b"for my certificate", acl=[make_acl("x509", subject, all=True)])
assert zk.get("/tls/x509-owned")[0] == b"for my certificate"
zk.add_auth("digest", "alice:pw")
zk.create("/tls/digest-owned", b"for alice", acl=[make_digest_acl("alice", "pw", all=True)])
assert zk.get("/tls/digest-owned")[0] == b"for alice"
zk.stop()
zk.close()
print("OK")
