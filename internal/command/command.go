// Package command defines the log entries of Grove's replicated state
// machine and their encoding.
//
// An entry is a fixed 10-byte header followed by a msgpack body:
//
//	byte 0     format version (Version)
//	byte 1     Kind
//	bytes 2-9  time in milliseconds since the Unix epoch, big endian,
//	           stamped by the leader when it accepts the proposal
//	bytes 10-  msgpack body of the kind's struct
//
// Everything the state machine needs to decide deterministically (times,
// session timeouts, passwords, the session's identities) travels in the
// entry, so applying the same log gives the same state on every node.
package command

import (
	"encoding/binary"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/mpappend"
	"github.com/grovekit/grove/internal/mpguard"
)

// Version is the entry format version written by this build.
const Version byte = 1

// HeaderSize is the size of the fixed entry header.
const HeaderSize = 10

// Kind is the kind of a log entry.
type Kind byte

// Entry kinds.
const (
	KindRequest       Kind = 1 // a session's write request (Request)
	KindCreateSession Kind = 2 // open a session (CreateSession); its id is the entry's index
	KindExpire        Kind = 3 // the leader expires sessions (Expire)
	KindReap          Kind = 4 // the leader reaps empty containers and idle TTL nodes (Reap)
)

// OpKind is the kind of a request operation.
type OpKind byte

// Request operation kinds.
const (
	OpCreate       OpKind = 1
	OpDelete       OpKind = 2
	OpSetData      OpKind = 3
	OpSetACL       OpKind = 4
	OpMulti        OpKind = 5
	OpCloseSession OpKind = 6
	OpCheck        OpKind = 7
	// OpReject stands in for a request a front end refused before raft
	// (too large, malformed): it applies as a failure with Code, so the
	// session's sequence has no gap and a retry gets the same answer.
	OpReject OpKind = 8
	// OpFence starts a new run of sequence numbers for a session whose
	// client does not number its requests (ZooKeeper's wire protocol) and
	// has just re-attached: it applies if Seq is above every applied one,
	// whatever the gap, and from then on every request of the session's
	// earlier connections that has not applied yet never will (it is below
	// the fence). Path carries a nonce the proposer finds in the result, to
	// tell its fence from a competing one with the same Seq.
	OpFence OpKind = 9
)

// String names the kind as ZooKeeper names its operations, for metrics
// and logs.
func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpDelete:
		return "delete"
	case OpSetData:
		return "setData"
	case OpSetACL:
		return "setACL"
	case OpMulti:
		return "multi"
	case OpCloseSession:
		return "closeSession"
	case OpCheck:
		return "check"
	case OpReject:
		return "reject"
	case OpFence:
		return "fence"
	}
	return "unknown"
}

// Request is a write of one session. Seq is the session's request sequence
// number: requests apply in Seq order and a repeated Seq is answered with the
// original result.
type Request struct {
	Session    uint64           `msgpack:"s"`
	Seq        uint64           `msgpack:"q"`
	Identities []grove.Identity `msgpack:"i,omitempty"`
	Op         OpKind           `msgpack:"o"`
	Path       string           `msgpack:"p,omitempty"`
	Data       []byte           `msgpack:"d,omitempty"`
	NullData   bool             `msgpack:"dn,omitempty"` // Data is null (ZooKeeper's -1), not empty
	ACL        []grove.ACL      `msgpack:"a,omitempty"`
	Mode       grove.CreateMode `msgpack:"m,omitempty"`
	TTL        int64            `msgpack:"t,omitempty"`
	Version    int32            `msgpack:"v,omitempty"`
	Ops        []grove.Op       `msgpack:"x,omitempty"` // OpMulti
	Code       grove.Code       `msgpack:"c,omitempty"` // OpReject
}

// CreateSession opens a session. The session id is the index of the entry.
type CreateSession struct {
	TimeoutMs int64  `msgpack:"t"` // already clamped by the proposer
	Password  []byte `msgpack:"p"` // random, chosen by the proposer
}

// Expire closes sessions the leader found expired.
type Expire struct {
	Sessions []uint64 `msgpack:"s"`
}

// ReapItem names one znode the leader believes is due for reaping. The state
// machine re-checks the condition with the entry's time before deleting, and
// skips the node if Czxid no longer matches (it was recreated).
type ReapItem struct {
	Path  string `msgpack:"p"`
	Czxid int64  `msgpack:"c"`
}

// Reap deletes empty containers and expired TTL nodes.
type Reap struct {
	Items []ReapItem `msgpack:"i"`
}

// Result is the outcome of a Request, cached by the state machine so a
// retried request gets it again.
type Result struct {
	Code  grove.Code  `msgpack:"c,omitempty"`
	Path  string      `msgpack:"p,omitempty"`
	Stat  *grove.Stat `msgpack:"s,omitempty"`
	Multi []OpResult  `msgpack:"m,omitempty"`
	// Zxid is the zxid of the entry that answered the request (for a
	// retried request, of the retry): the state a reader must reach to see
	// the write. Set by the node when it hands the result out, not stored.
	Zxid uint64 `msgpack:"z,omitempty"`
}

// OpResult is the outcome of one operation of a multi.
type OpResult struct {
	Type grove.OpType `msgpack:"t"`
	Code grove.Code   `msgpack:"c,omitempty"`
	Path string       `msgpack:"p,omitempty"`
	Stat *grove.Stat  `msgpack:"s,omitempty"`
}

// Entry is a decoded log entry.
type Entry struct {
	Kind   Kind
	TimeMs int64
	Body   any // *Request, *CreateSession, *Expire or *Reap
}

// Encode returns the entry bytes for a body with the time left zero for the
// leader to stamp.
func Encode(body any) ([]byte, error) {
	var kind Kind
	switch body.(type) {
	case *Request:
		kind = KindRequest
	case *CreateSession:
		kind = KindCreateSession
	case *Expire:
		kind = KindExpire
	case *Reap:
		kind = KindReap
	default:
		return nil, fmt.Errorf("command: cannot encode %T: %w", body, grove.ErrBadRequest)
	}
	out, err := marshalAfter(HeaderSize, sizeHint(body), body)
	if err != nil {
		return nil, fmt.Errorf("command: encode %T: %w", body, err)
	}
	out[0] = Version
	out[1] = byte(kind)
	return out, nil
}

// marshalAfter encodes v with msgpack after prefix zero bytes, in one
// buffer sized for about hint bytes of encoding: no copy of the encoding
// behind the prefix, and no growing for the paths and data of a large
// request.
func marshalAfter(prefix, hint int, v any) ([]byte, error) {
	return mpappend.Append(make([]byte, prefix, prefix+hint), v)
}

// sizeHint estimates the encoded size of a body: its paths and data, plus
// room for the fixed fields.
func sizeHint(body any) int {
	const fixed = 64
	r, ok := body.(*Request)
	if !ok {
		return fixed
	}
	n := fixed + len(r.Path) + len(r.Data) + 32*(len(r.ACL)+len(r.Identities))
	for _, op := range r.Ops {
		n += 16 + len(op.Path) + len(op.Data) + 32*len(op.ACL)
	}
	return n
}

// Stamp writes the leader's time into an encoded entry. It does nothing to
// data too short to be an entry.
func Stamp(data []byte, timeMs int64) {
	if len(data) >= HeaderSize {
		binary.BigEndian.PutUint64(data[2:10], uint64(timeMs))
	}
}

// StampedTime returns the time stamped in an encoded entry, or 0.
func StampedTime(data []byte) int64 {
	if len(data) < HeaderSize {
		return 0
	}
	return int64(binary.BigEndian.Uint64(data[2:10]))
}

// Decode parses an entry. Malformed input returns an error wrapping
// grove.ErrCorrupt; it never panics.
func Decode(data []byte) (*Entry, error) {
	if len(data) < HeaderSize {
		return nil, fmt.Errorf("command: entry of %d bytes is shorter than its header: %w", len(data), grove.ErrCorrupt)
	}
	if data[0] != Version {
		return nil, fmt.Errorf("command: unknown entry format version %d: %w", data[0], grove.ErrCorrupt)
	}
	e := &Entry{Kind: Kind(data[1]), TimeMs: StampedTime(data)}
	switch e.Kind {
	case KindRequest:
		e.Body = new(Request)
	case KindCreateSession:
		e.Body = new(CreateSession)
	case KindExpire:
		e.Body = new(Expire)
	case KindReap:
		e.Body = new(Reap)
	default:
		return nil, fmt.Errorf("command: unknown entry kind %d: %w", data[1], grove.ErrCorrupt)
	}
	if err := mpguard.Check(data[HeaderSize:]); err != nil {
		return nil, fmt.Errorf("command: decode kind %d: %v: %w", e.Kind, err, grove.ErrCorrupt)
	}
	if err := msgpack.Unmarshal(data[HeaderSize:], e.Body); err != nil {
		return nil, fmt.Errorf("command: decode kind %d: %v: %w", e.Kind, err, grove.ErrCorrupt)
	}
	return e, nil
}

// EncodeResult encodes a Result for the state machine's result cache.
func EncodeResult(r *Result) ([]byte, error) {
	n := 96 + len(r.Path) // the code, a Stat and the path
	for _, m := range r.Multi {
		n += 96 + len(m.Path)
	}
	return marshalAfter(0, n, r)
}

// DecodeResult decodes a cached Result.
func DecodeResult(b []byte) (*Result, error) {
	r := new(Result)
	if err := mpguard.Check(b); err != nil {
		return nil, fmt.Errorf("command: decode result: %v: %w", err, grove.ErrCorrupt)
	}
	if err := msgpack.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("command: decode result: %v: %w", err, grove.ErrCorrupt)
	}
	return r, nil
}

// EncodeMsgpack writes r as the map the struct tags describe, without
// reflection: the result of every write is encoded once to be cached, and
// msgpack's omitempty handling allocates per field on each encode.
func (r *Result) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 0
	for _, set := range [...]bool{r.Code != 0, r.Path != "", r.Stat != nil, len(r.Multi) > 0, r.Zxid != 0} {
		if set {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if r.Code != 0 {
		if err := encodeKeyInt(enc, "c", int64(r.Code)); err != nil {
			return err
		}
	}
	if r.Path != "" {
		if err := encodeKeyString(enc, "p", r.Path); err != nil {
			return err
		}
	}
	if r.Stat != nil {
		if err := enc.EncodeString("s"); err != nil {
			return err
		}
		if err := encodeStat(enc, r.Stat); err != nil {
			return err
		}
	}
	if len(r.Multi) > 0 {
		if err := enc.EncodeString("m"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(r.Multi)); err != nil {
			return err
		}
		for i := range r.Multi {
			if err := r.Multi[i].EncodeMsgpack(enc); err != nil {
				return err
			}
		}
	}
	if r.Zxid != 0 {
		if err := enc.EncodeString("z"); err != nil {
			return err
		}
		return enc.EncodeUint(r.Zxid)
	}
	return nil
}

// EncodeMsgpack writes o as the map the struct tags describe, without
// reflection (see Result.EncodeMsgpack).
func (o *OpResult) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 1
	for _, set := range [...]bool{o.Code != 0, o.Path != "", o.Stat != nil} {
		if set {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := encodeKeyInt(enc, "t", int64(o.Type)); err != nil {
		return err
	}
	if o.Code != 0 {
		if err := encodeKeyInt(enc, "c", int64(o.Code)); err != nil {
			return err
		}
	}
	if o.Path != "" {
		if err := encodeKeyString(enc, "p", o.Path); err != nil {
			return err
		}
	}
	if o.Stat != nil {
		if err := enc.EncodeString("s"); err != nil {
			return err
		}
		return encodeStat(enc, o.Stat)
	}
	return nil
}

func encodeKeyInt(enc *msgpack.Encoder, key string, v int64) error {
	if err := enc.EncodeString(key); err != nil {
		return err
	}
	return enc.EncodeInt(v)
}

func encodeKeyString(enc *msgpack.Encoder, key, v string) error {
	if err := enc.EncodeString(key); err != nil {
		return err
	}
	return enc.EncodeString(v)
}

// encodeStat writes a Stat as the map of its field names that reflection
// would write.
func encodeStat(enc *msgpack.Encoder, st *grove.Stat) error {
	fields := [...]struct {
		name string
		v    int64
	}{
		{"Czxid", st.Czxid}, {"Mzxid", st.Mzxid}, {"Ctime", st.Ctime}, {"Mtime", st.Mtime},
		{"Version", int64(st.Version)}, {"Cversion", int64(st.Cversion)}, {"Aversion", int64(st.Aversion)},
		{"EphemeralOwner", st.EphemeralOwner}, {"DataLength", int64(st.DataLength)},
		{"NumChildren", int64(st.NumChildren)}, {"Pzxid", st.Pzxid},
	}
	if err := enc.EncodeMapLen(len(fields)); err != nil {
		return err
	}
	for _, f := range fields {
		if err := encodeKeyInt(enc, f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}
