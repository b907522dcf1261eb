// Package wire is Grove's native client protocol: the messages a client
// (package client) and a server's client port (package front) exchange,
// each carried in one transport.FrameClient frame.
//
// A message is a type byte, the request's xid (8 bytes, big-endian; 0 for
// events) and a msgpack body whose shape the type (for replies: the type of
// the request answered) fixes. The client starts with Connect and gets
// Connected or Error; then it pipelines requests, each with a fresh xid,
// and the server answers every request with Reply or Error carrying the
// same xid, in request order, with watch events (Event) in between, in the
// order they happened relative to the replies.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/mpappend"
	"github.com/grovekit/grove/internal/mpguard"
)

// Version is the protocol version a Connect carries.
const Version = 1

// Type is a message type.
type Type byte

// Message types. Client to server: Connect, then any of Write through
// SetWatches. Server to client: Connected, Reply, Error, Event.
const (
	TConnect       Type = 1  // Connect
	TWrite         Type = 2  // command.Request; reply command.Result
	TRead          Type = 3  // Read; reply ReadResult
	TSync          Type = 4  // empty; reply Zxid
	TPing          Type = 5  // empty; reply Left
	TAddWatch      Type = 6  // Watch; reply empty
	TRemoveWatches Type = 7  // Watch; reply empty
	TAuth          Type = 8  // Auth; reply grove.Identity
	TSetWatches    Type = 9  // SetWatches; reply Zxid
	TConnected     Type = 32 // Connected
	TReply         Type = 33 // the answer to the request with the same xid
	TError         Type = 34 // Error, for the request with the same xid (0: the connection)
	TEvent         Type = 35 // grove.Event
)

// String names the type for logs and errors.
func (t Type) String() string {
	switch t {
	case TConnect:
		return "connect"
	case TWrite:
		return "write"
	case TRead:
		return "read"
	case TSync:
		return "sync"
	case TPing:
		return "ping"
	case TAddWatch:
		return "add-watch"
	case TRemoveWatches:
		return "remove-watches"
	case TAuth:
		return "auth"
	case TSetWatches:
		return "set-watches"
	case TConnected:
		return "connected"
	case TReply:
		return "reply"
	case TError:
		return "error"
	case TEvent:
		return "event"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// IsRequest reports whether t is a request a client sends after Connect.
func (t Type) IsRequest() bool { return t >= TWrite && t <= TSetWatches }

// headerLen is the type byte plus the xid.
const headerLen = 9

// ErrMalformed is returned for a message that cannot be decoded.
var ErrMalformed = errors.New("wire: malformed message")

// Connect opens or re-attaches a session.
type Connect struct {
	Version   int    `msgpack:"v"`
	Session   uint64 `msgpack:"s,omitempty"` // 0: open a new session
	Password  []byte `msgpack:"p,omitempty"`
	TimeoutMs int64  `msgpack:"t,omitempty"` // requested session timeout
	// LastZxid is the highest zxid the client has seen; a server that has
	// not applied it refuses the connection (grove.ErrServerBehind).
	LastZxid uint64 `msgpack:"z,omitempty"`
}

// Connected accepts a Connect.
type Connected struct {
	Session   uint64 `msgpack:"s"`
	Password  []byte `msgpack:"p"`
	TimeoutMs int64  `msgpack:"t"` // negotiated session timeout
	LeftMs    int64  `msgpack:"l,omitempty"`
	Server    uint64 `msgpack:"n"` // the server's raft ID
	Zxid      uint64 `msgpack:"z"` // the server's applied zxid
	MaxFrame  int    `msgpack:"f"` // the largest frame the server reads
	// AdminURL is the server's HTTP admin address ("http://HOST:PORT" or
	// https), for tools that reach the cluster through a client port;
	// empty if it has none.
	AdminURL string `msgpack:"h,omitempty"`
}

// Read is a read request.
type Read struct {
	Kind         uint8  `msgpack:"k"`
	Path         string `msgpack:"p"`
	After        string `msgpack:"a,omitempty"`
	Limit        int    `msgpack:"n,omitempty"`
	MinZxid      uint64 `msgpack:"z,omitempty"`
	Linearizable bool   `msgpack:"l,omitempty"`
	Watch        bool   `msgpack:"w,omitempty"`
}

// ReadResult answers a Read.
type ReadResult struct {
	Data   []byte      `msgpack:"d,omitempty"`
	Stat   grove.Stat  `msgpack:"s"`
	Exists bool        `msgpack:"e,omitempty"`
	Names  []string    `msgpack:"n,omitempty"`
	More   bool        `msgpack:"m,omitempty"`
	ACL    []grove.ACL `msgpack:"a,omitempty"`
	Count  int64       `msgpack:"c,omitempty"`
	Zxid   uint64      `msgpack:"z"`
}

// Zxid answers Sync and SetWatches.
type Zxid struct {
	Zxid uint64 `msgpack:"z"`
}

// Left answers Ping: how long the session surely lives (0: unknown, e.g.
// no leader answered in time).
type Left struct {
	LeftMs int64 `msgpack:"l"`
}

// Watch names a watch for AddWatch and RemoveWatches (Kind 0: all kinds).
type Watch struct {
	Path string          `msgpack:"p"`
	Kind grove.WatchKind `msgpack:"k,omitempty"`
	// Existed says, for a data watch in SetWatches, whether the node
	// existed when the watch was set.
	Existed bool `msgpack:"e,omitempty"`
}

// SetWatches moves a reconnected session's watches to the new server.
type SetWatches struct {
	Since   uint64  `msgpack:"z"`
	Watches []Watch `msgpack:"w"`
}

// Auth adds credentials to the connection.
type Auth struct {
	Scheme string `msgpack:"s"`
	Cred   []byte `msgpack:"c"`
}

// Error fails a request (or, with xid 0, the connection).
type Error struct {
	Code    grove.Code `msgpack:"c"`
	Message string     `msgpack:"m,omitempty"`
}

// Err returns the error the message stands for: the sentinel of its code,
// wrapped with the server's message when there is one.
func (e *Error) Err() error {
	base := grove.CodeError(e.Code)
	if base == nil {
		base = grove.ErrSystemError
	}
	msg := strings.TrimSuffix(e.Message, ": "+base.Error()) // the sentinel shows once
	if msg == "" || msg == base.Error() {
		return base
	}
	return fmt.Errorf("%w (server: %s)", base, msg)
}

// ErrorOf turns err into an Error message body.
func ErrorOf(err error) *Error {
	return &Error{Code: grove.ErrorCode(err), Message: err.Error()}
}

// Append appends a message (type, xid, msgpack of body; nil body: none) to
// dst.
func Append(dst []byte, t Type, xid uint64, body any) ([]byte, error) {
	if dst == nil {
		dst = make([]byte, 0, 128)
	}
	dst = append(dst, byte(t))
	dst = binary.BigEndian.AppendUint64(dst, xid)
	if body == nil {
		return dst, nil
	}
	out, err := mpappend.Append(dst, body)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", t, err)
	}
	return out, nil
}

// Split splits a message into its type, xid and body.
func Split(msg []byte) (Type, uint64, []byte, error) {
	if len(msg) < headerLen {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMalformed, len(msg))
	}
	return Type(msg[0]), binary.BigEndian.Uint64(msg[1:headerLen]), msg[headerLen:], nil
}

// DecodeBody decodes a message body into v, refusing malformed or lying
// msgpack before it allocates. An empty body leaves v as it is.
func DecodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := mpguard.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
