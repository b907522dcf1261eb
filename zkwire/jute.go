package zkwire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/grovekit/grove"
)

// ErrMalformed is returned for a request that does not decode as the jute
// record its opcode names.
var ErrMalformed = errors.New("zkwire: malformed request")

// decoder reads jute primitives from a request body. The first error
// sticks; every length is checked against the bytes left before anything
// is allocated.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(fmt.Sprintf("%s needs %d bytes, %d left", what, n, len(d.b)))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) int32() int32 {
	p := d.take(4, "int")
	if p == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(p))
}

func (d *decoder) int64() int64 {
	p := d.take(8, "long")
	if p == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(p))
}

func (d *decoder) bool() bool {
	p := d.take(1, "bool")
	return p != nil && p[0] != 0
}

// buffer reads a length-prefixed byte string (-1: nil). The result aliases
// the request.
func (d *decoder) buffer() []byte {
	n := d.int32()
	if d.err != nil || n == -1 {
		return nil
	}
	return d.take(int(n), "buffer")
}

func (d *decoder) string() string { return string(d.buffer()) }

// count reads a vector length, refusing one whose elements (each at least
// min bytes) cannot fit in what is left.
func (d *decoder) count(min int) int {
	n := d.int32()
	if d.err != nil || n == -1 {
		return 0
	}
	if n < 0 || int(n) > len(d.b)/min {
		d.fail(fmt.Sprintf("vector of %d elements in %d bytes", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) strings() []string {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.string())
	}
	return out
}

func (d *decoder) acls() []grove.ACL {
	n := d.count(12)
	if n == 0 {
		return nil
	}
	out := make([]grove.ACL, 0, n)
	for range n {
		perms := d.int32()
		scheme := d.string()
		id := d.string()
		out = append(out, grove.ACL{Perms: grove.Perm(perms), Scheme: scheme, ID: id})
	}
	return out
}

// encoder appends jute primitives.
type encoder struct{ b []byte }

func (e *encoder) int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }
func (e *encoder) int64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) buffer(p []byte) {
	if p == nil {
		e.int32(-1)
		return
	}
	e.int32(int32(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) string(s string) {
	e.int32(int32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strings(ss []string) {
	e.int32(int32(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

func (e *encoder) acls(acl []grove.ACL) {
	e.int32(int32(len(acl)))
	for _, a := range acl {
		e.int32(int32(a.Perms))
		e.string(a.Scheme)
		e.string(a.ID)
	}
}

func (e *encoder) stat(s *grove.Stat) {
	e.int64(s.Czxid)
	e.int64(s.Mzxid)
	e.int64(s.Ctime)
	e.int64(s.Mtime)
	e.int32(s.Version)
	e.int32(s.Cversion)
	e.int32(s.Aversion)
	e.int64(s.SessionOwner()) // ZooKeeper shows containers and TTL nodes as 0
	e.int32(s.DataLength)
	e.int32(s.NumChildren)
	e.int64(s.Pzxid)
}

// replyHeader appends ZooKeeper's reply header.
func (e *encoder) replyHeader(xid int32, zxid int64, code grove.Code) {
	e.int32(xid)
	e.int64(zxid)
	e.int32(int32(code))
}

// frame returns a length-prefixed frame of a message built by fn.
func frame(fn func(e *encoder)) []byte {
	e := encoder{b: make([]byte, 4, 64)}
	fn(&e)
	binary.BigEndian.PutUint32(e.b[:4], uint32(len(e.b)-4))
	return e.b
}
