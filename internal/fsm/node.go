package fsm

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync/atomic"

	"github.com/grovekit/grove"
)

// Node record formats: the version byte that starts every record.
// nodeFormat records (written before checksums) are read as they are;
// every record written now is nodeFormatCRC: the same layout followed by
// the CRC-32C of everything before it, checked on every read.
const (
	nodeFormat    byte = 1
	nodeFormatCRC byte = 2
)

// nullDataBit, in the create-mode byte, marks null data (create modes
// are below 8).
const nullDataBit byte = 0x80

// crcTable is the Castagnoli polynomial (hardware-accelerated).
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// corruptRecords counts node records whose checksum did not match, since
// the process started (CorruptRecords).
var corruptRecords atomic.Uint64

// CorruptRecords returns the number of node records found damaged (a
// checksum mismatch) by reads and scrubs since the process started.
func CorruptRecords() uint64 { return corruptRecords.Load() }

// nodeHeaderSize is the size of the fixed part of a node record:
//
//	0      format (nodeFormat, nodeFormatCRC)
//	1-8    czxid        9-16  mzxid       17-24 pzxid
//	25-32  ctime        33-40 mtime
//	41-44  version      45-52 cversion (64-bit child counter)
//	53-56  aversion     57-64 ephemeral owner
//	65-68  numChildren  69    create mode (| nullDataBit)  70-77 ttl (ms)
//
// followed by the ACL (uvarint count, then per entry perms as 4 bytes and
// uvarint-length-prefixed scheme and id) and the data, which runs to the end
// (nodeFormatCRC: to the 4-byte CRC-32C that ends the record). All integers
// are big endian.
const nodeHeaderSize = 78

// nodeHeaderSizeCRC is the fixed part of a nodeFormatCRC record: the
// nodeFormat header followed by
//
//	78-85  the sequence counter: the child creates so far (node.seq)
const nodeHeaderSizeCRC = nodeHeaderSize + 8

// maxPathLen bounds the length of a znode path so that every index key built
// from it stays below bbolt's key size limit (32 KiB).
const maxPathLen = 32*1024 - 64

// node is the decoded record of a znode.
type node struct {
	czxid, mzxid, pzxid int64
	ctime, mtime        int64
	version, aversion   int32
	cversion            uint64 // the 64-bit child counter; Stat.Cversion is its low 32 bits
	// seq counts the children ever created (deletes do not count): the
	// next sequential child's suffix, as ZooKeeper numbers them (its
	// cversion as its request pipeline sees it, which deletes do not move;
	// measured by cmd/grove's differential test). Records of nodeFormat
	// have none and use cversion.
	seq         uint64
	owner       int64 // Stat.EphemeralOwner
	numChildren int32
	mode        grove.CreateMode
	nullData    bool  // the data is null (ZooKeeper's -1), not empty
	ttl         int64 // ms, for TTL modes
	acl         []grove.ACL
	data        []byte
}

// stat returns the node's ZooKeeper Stat.
func (n *node) stat() grove.Stat {
	return grove.Stat{
		Czxid:          n.czxid,
		Mzxid:          n.mzxid,
		Ctime:          n.ctime,
		Mtime:          n.mtime,
		Version:        n.version,
		Cversion:       int32(uint32(n.cversion)), // low 32 bits by definition
		Aversion:       n.aversion,
		EphemeralOwner: n.owner,
		DataLength:     int32(len(n.data)), // data size is bounded by the proposer
		NumChildren:    n.numChildren,
		Pzxid:          n.pzxid,
	}
}

// statPtr returns a pointer to a fresh copy of the node's Stat.
func (n *node) statPtr() *grove.Stat {
	s := n.stat()
	return &s
}

// isEphemeral reports whether the node is owned by a session.
func (n *node) isEphemeral() bool { return isSessionOwner(n.owner) }

// isSessionOwner reports whether an EphemeralOwner value names a session
// (rather than being 0, the container marker or a TTL).
func isSessionOwner(owner int64) bool {
	return owner != 0 && owner != grove.EphemeralOwnerContainer &&
		owner&grove.EphemeralOwnerTTLBit != grove.EphemeralOwnerTTLBit
}

// reapable reports whether the node is a container or TTL node, which the
// reap index tracks.
func (n *node) reapable() bool { return n.mode.IsContainer() || n.mode.IsTTL() }

// dueForReap reports whether a container or TTL node qualifies for reaping
// at nowMs: a container with no children that once had one, or a TTL node
// with no children whose data was last changed more than ttl ago.
func (n *node) dueForReap(nowMs int64) bool {
	if n.numChildren != 0 {
		return false
	}
	switch {
	case n.mode.IsContainer():
		return n.cversion > 0
	case n.mode.IsTTL():
		return n.ttl != 0 && nowMs-n.mtime > n.ttl
	}
	return false
}

// encode returns the node's record.
func (n *node) encode() []byte {
	size := nodeHeaderSizeCRC + binary.MaxVarintLen64 + len(n.data)
	for _, a := range n.acl {
		size += 4 + 2*binary.MaxVarintLen64 + len(a.Scheme) + len(a.ID)
	}
	b := make([]byte, nodeHeaderSizeCRC, size+4)
	b[0] = nodeFormatCRC
	be := binary.BigEndian
	be.PutUint64(b[1:], uint64(n.czxid))  // bit pattern
	be.PutUint64(b[9:], uint64(n.mzxid))  // bit pattern
	be.PutUint64(b[17:], uint64(n.pzxid)) // bit pattern
	be.PutUint64(b[25:], uint64(n.ctime)) // bit pattern
	be.PutUint64(b[33:], uint64(n.mtime)) // bit pattern
	be.PutUint32(b[41:], uint32(n.version))
	be.PutUint64(b[45:], n.cversion)
	be.PutUint32(b[53:], uint32(n.aversion))
	be.PutUint64(b[57:], uint64(n.owner)) // bit pattern
	be.PutUint32(b[65:], uint32(n.numChildren))
	b[69] = byte(n.mode)
	if n.nullData {
		b[69] |= nullDataBit
	}
	be.PutUint64(b[70:], uint64(n.ttl)) // bit pattern
	be.PutUint64(b[78:], n.seq)
	b = binary.AppendUvarint(b, uint64(len(n.acl)))
	for _, a := range n.acl {
		b = be.AppendUint32(b, uint32(a.Perms))
		b = binary.AppendUvarint(b, uint64(len(a.Scheme)))
		b = append(b, a.Scheme...)
		b = binary.AppendUvarint(b, uint64(len(a.ID)))
		b = append(b, a.ID...)
	}
	b = append(b, n.data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeNode parses a node record. The returned node's data aliases b; copy
// it before b becomes invalid. A malformed record returns an error wrapping
// grove.ErrCorrupt.
func decodeNode(b []byte) (*node, error) {
	header := nodeHeaderSize
	if len(b) >= nodeHeaderSizeCRC+4 && b[0] == nodeFormatCRC {
		body := b[:len(b)-4]
		if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
			corruptRecords.Add(1)
			return nil, fmt.Errorf("fsm: node record of %d bytes: checksum mismatch: %w", len(b), grove.ErrCorrupt)
		}
		b, header = body, nodeHeaderSizeCRC
	} else if len(b) < nodeHeaderSize || b[0] != nodeFormat {
		return nil, fmt.Errorf("fsm: node record of %d bytes: %w", len(b), grove.ErrCorrupt)
	}
	be := binary.BigEndian
	n := &node{
		czxid:       int64(be.Uint64(b[1:])),  // bit pattern
		mzxid:       int64(be.Uint64(b[9:])),  // bit pattern
		pzxid:       int64(be.Uint64(b[17:])), // bit pattern
		ctime:       int64(be.Uint64(b[25:])), // bit pattern
		mtime:       int64(be.Uint64(b[33:])), // bit pattern
		version:     int32(be.Uint32(b[41:])), // bit pattern
		cversion:    be.Uint64(b[45:]),
		aversion:    int32(be.Uint32(b[53:])), // bit pattern
		owner:       int64(be.Uint64(b[57:])), // bit pattern
		numChildren: int32(be.Uint32(b[65:])), // bit pattern
		mode:        grove.CreateMode(b[69] &^ nullDataBit),
		nullData:    b[69]&nullDataBit != 0,
		ttl:         int64(be.Uint64(b[70:])), // bit pattern
	}
	n.seq = n.cversion
	if header == nodeHeaderSizeCRC {
		n.seq = be.Uint64(b[78:])
	}
	rest := b[header:]
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) {
		return nil, fmt.Errorf("fsm: node record acl count: %w", grove.ErrCorrupt)
	}
	rest = rest[k:]
	n.acl = make([]grove.ACL, count)
	for i := range n.acl {
		if len(rest) < 4 {
			return nil, fmt.Errorf("fsm: node record acl %d: %w", i, grove.ErrCorrupt)
		}
		n.acl[i].Perms = grove.Perm(be.Uint32(rest)) // bit pattern
		var scheme, id []byte
		var ok bool
		if scheme, rest, ok = cutString(rest[4:]); !ok {
			return nil, fmt.Errorf("fsm: node record acl %d scheme: %w", i, grove.ErrCorrupt)
		}
		if id, rest, ok = cutString(rest); !ok {
			return nil, fmt.Errorf("fsm: node record acl %d id: %w", i, grove.ErrCorrupt)
		}
		n.acl[i].Scheme = internString(scheme)
		n.acl[i].ID = internString(id)
	}
	n.data = rest
	return n, nil
}

// cutString splits a uvarint-length-prefixed byte string off b.
func cutString(b []byte) (s, rest []byte, ok bool) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return nil, nil, false
	}
	end := k + int(l) // bounded by len(b) above
	return b[k:end], b[end:], true
}

// internString returns b as a string, without allocating for the strings
// that nearly every ACL holds.
func internString(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "world":
		return "world"
	case "anyone":
		return "anyone"
	case "digest":
		return "digest"
	case "ip":
		return "ip"
	}
	return string(b)
}

// Scrub reads every node record of the state and calls bad with the path
// and error of each one that does not decode (a checksum mismatch is
// counted in CorruptRecords too). It returns the number of records read.
func Scrub(tx Tx, bad func(path string, err error)) (int, error) {
	b := tx.Bucket(bucketNodes)
	if b == nil {
		return 0, fmt.Errorf("fsm: scrub: %w", errMissingBucket)
	}
	n := 0
	err := b.ForEach(func(k, v []byte) error {
		n++
		if _, err := decodeNode(v); err != nil {
			bad(string(k), err)
		}
		return nil
	})
	return n, err
}
