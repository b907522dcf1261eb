// Package audit writes Grove's audit log: one JSON object per line for
// every write, ACL change, membership change and backup, naming who did it
// (session, identities, client address) and what came of it. It is opt-in
// (grove server --audit-log FILE); reads are not logged, as in ZooKeeper's
// audit log.
package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// Record is one line of the audit log.
type Record struct {
	Time time.Time `json:"time"`
	// Kind is "write", "acl", "member" or "backup".
	Kind string `json:"kind"`
	// Op names the operation: create, delete, setData, setACL, multi,
	// check, closeSession; add-learner, promote, remove; backup.
	Op   string `json:"op"`
	Path string `json:"path,omitempty"`
	// Session is the client session, in hex ("" for the HTTP port).
	Session string `json:"session,omitempty"`
	// Identities are the caller's scheme:id pairs (the ip identity
	// included; digest ids carry the user and hash, never a password).
	Identities []string `json:"identities,omitempty"`
	// Client is the caller's address; Port the port it came in on
	// (zookeeper, native, http, or "leader" for the leader's own
	// membership decisions).
	Client string `json:"client,omitempty"`
	Port   string `json:"port"`
	// Result is "ok" or the error (a ZooKeeper code name).
	Result string `json:"result"`
	Zxid   uint64 `json:"zxid,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Log appends records to a file. A nil *Log discards them, so callers need
// no check. Safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	enc    *json.Encoder
	logger *slog.Logger
	err    error // the first write error, reported again by Close
	lost   int64 // records not written
}

// Open appends to the audit log at path, creating it (mode 0600). A record
// it fails to write is reported on logger (the first failure at once,
// then every 1,000th lost record), as well as by Close.
func Open(path string, logger *slog.Logger) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{f: f, enc: json.NewEncoder(f), logger: logger}, nil
}

// Write appends r, stamping its time if unset. Auditing never fails the
// operation it records; a failed write is logged (see Open).
func (l *Log) Write(r Record) {
	if l == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(r); err != nil {
		if l.err == nil {
			l.err = err
		}
		if l.lost%1000 == 0 {
			l.logger.Error("audit: a record could not be written and is lost", "file", l.f.Name(), "lost", l.lost+1, "err", err)
		}
		l.lost++
	}
}

// Close closes the file and returns the first write error, if any.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.f.Close()
	if l.err != nil {
		return fmt.Errorf("audit: write: %w", l.err)
	}
	return err
}

// Request records a client's write request and its result.
func (l *Log) Request(port, client string, req *command.Request, res *command.Result) {
	if l == nil || req == nil || res == nil {
		return
	}
	r := Record{Kind: "write", Op: opName(req.Op), Path: req.Path, Session: fmt.Sprintf("%x", req.Session),
		Identities: Identities(req.Identities), Client: client, Port: port, Result: result(res.Code), Zxid: res.Zxid}
	switch req.Op {
	case command.OpSetACL:
		r.Kind = "acl"
	case command.OpMulti:
		paths := make([]string, 0, len(req.Ops))
		for _, o := range req.Ops {
			paths = append(paths, o.Path)
		}
		r.Detail = strings.Join(paths, " ")
	case command.OpReject:
		r.Op = "rejected"
	}
	l.Write(r)
}

// Identities renders identities as scheme:id.
func Identities(ids []grove.Identity) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.Scheme+":"+id.ID)
	}
	return out
}

func result(c grove.Code) string {
	if c == grove.CodeOK {
		return "ok"
	}
	if err := grove.CodeError(c); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("code %d", c)
}

func opName(k command.OpKind) string {
	switch k {
	case command.OpCreate:
		return "create"
	case command.OpDelete:
		return "delete"
	case command.OpSetData:
		return "setData"
	case command.OpSetACL:
		return "setACL"
	case command.OpMulti:
		return "multi"
	case command.OpCloseSession:
		return "closeSession"
	case command.OpCheck:
		return "check"
	case command.OpFence:
		return "fence"
	}
	return fmt.Sprintf("op%d", k)
}
