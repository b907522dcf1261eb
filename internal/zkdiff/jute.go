package zkdiff

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The tester writes and reads ZooKeeper's records by hand, with
// encoding/binary, independently of the server's own codec (package zkwire)
// so that a bug there cannot hide behind the same bug here.

// enc appends jute records to a buffer.
type enc []byte

func (e enc) i32(v int32) enc { return binary.BigEndian.AppendUint32(e, uint32(v)) }
func (e enc) i64(v int64) enc { return binary.BigEndian.AppendUint64(e, uint64(v)) }
func (e enc) str(s string) enc {
	return append(e.i32(int32(len(s))), s...)
}
func (e enc) boolean(b bool) enc {
	if b {
		return append(e, 1)
	}
	return append(e, 0)
}

// buf writes a jute buffer; nil is jute's null (length -1).
func (e enc) buf(b []byte) enc {
	if b == nil {
		return e.i32(-1)
	}
	return append(e.i32(int32(len(b))), b...)
}

func (e enc) acls(acls []ACL) enc {
	if acls == nil {
		return e.i32(-1)
	}
	e = e.i32(int32(len(acls)))
	for _, a := range acls {
		e = e.i32(a.Perms).str(a.Scheme).str(a.ID)
	}
	return e
}

// errShort is a reply that ends inside a record.
var errShort = errors.New("zkdiff: reply ends inside a record")

// dec reads jute records; the first error sticks and later reads return
// zero values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) i32() int32 {
	if v := d.take(4); v != nil {
		return int32(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (d *dec) i64() int64 {
	if v := d.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (d *dec) boolean() bool {
	v := d.take(1)
	return v != nil && v[0] != 0
}

// buf reads a jute buffer; null comes back as nil.
func (d *dec) buf() []byte {
	n := d.i32()
	if n == -1 || d.err != nil {
		return nil
	}
	v := d.take(int(n))
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

func (d *dec) str() string {
	n := d.i32()
	if n == -1 {
		return "<null>"
	}
	return string(d.take(int(n)))
}

func (d *dec) strs() []string {
	n := d.i32()
	if n < 0 || d.err != nil {
		return nil
	}
	out := []string{}
	for range n {
		out = append(out, d.str())
		if d.err != nil {
			return nil
		}
	}
	return out
}

// stat is ZooKeeper's Stat record.
type stat struct {
	czxid, mzxid, ctime, mtime  int64
	version, cversion, aversion int32
	ephemeralOwner              int64
	dataLength, numChildren     int32
	pzxid                       int64
}

func (d *dec) stat() stat {
	return stat{czxid: d.i64(), mzxid: d.i64(), ctime: d.i64(), mtime: d.i64(),
		version: d.i32(), cversion: d.i32(), aversion: d.i32(), ephemeralOwner: d.i64(),
		dataLength: d.i32(), numChildren: d.i32(), pzxid: d.i64()}
}

func (d *dec) acls() []ACL {
	n := d.i32()
	if n < 0 || d.err != nil {
		return nil
	}
	out := []ACL{}
	for range n {
		out = append(out, ACL{Perms: d.i32(), Scheme: d.str(), ID: d.str()})
		if d.err != nil {
			return nil
		}
	}
	return out
}

// rest returns what is left unread, for the report.
func (d *dec) rest() string {
	if d.err != nil {
		return " " + d.err.Error()
	}
	if len(d.b) > 0 {
		return fmt.Sprintf(" +%d unread bytes %x", len(d.b), d.b)
	}
	return ""
}
