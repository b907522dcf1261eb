package zkwire_test

import (
	"net"
	"testing"
	"time"
)

// FuzzRequestStream throws arbitrary bytes at a connected ZooKeeper
// session: the server answers or closes that connection, never crashes or
// hangs, and other sessions carry on.
func FuzzRequestStream(f *testing.F) {
	zc := newZKCluster(f, 1)
	probe, _ := connect(f, zc.addrs, 5*time.Second)
	f.Add(framed(rec(nil).i32(1).i32(opCreate).str("/f").str("d").i32(1).i32(31).str("world").str("anyone").i32(0)))
	f.Add(framed(rec(nil).i32(2).i32(14).i32(1).boolean(false).i32(-1).str("/m").str("").i32(0).i32(0).i32(-1).boolean(true).i32(-1)))
	f.Add(framed(rec(nil).i32(-8).i32(opSetWatches2).i64(3).i32(1).str("/").i32(0).i32(0).i32(1).str("/x").i32(0)))
	f.Add(framed(rec(nil).i32(-4).i32(100).i32(0).str("digest").str("a:b")))
	f.Add(framed(rec(nil).i32(3).i32(opMultiRead).i32(opGetData).boolean(false).i32(-1).str("/").boolean(true)))
	f.Add(framed(rec(nil).i32(4).i32(-11)))
	f.Add([]byte("ruok"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := dialRaw(t, zc.addrs[0])
		c.mustConnect()
		if _, err := c.nc.Write(data); err != nil {
			t.Fatal(err)
		}
		_ = c.nc.(*net.TCPConn).CloseWrite()
		for {
			if _, err := c.frame(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("the server neither answered nor closed the connection")
				}
				break
			}
		}
		if _, err := probe.Sync("/"); err != nil {
			t.Fatalf("another session broke: %v", err)
		}
	})
}
