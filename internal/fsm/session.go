package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/grovekit/grove"
)

// sessionFormat is the version byte that starts every session record:
// format(1) timeoutMs(8) lastSeq(8) password(rest), big endian.
const sessionFormat byte = 1

const sessionHeaderSize = 17

// encodeSession returns the record of s (s.ID is the key, not stored).
func encodeSession(s *Session) []byte {
	b := make([]byte, sessionHeaderSize, sessionHeaderSize+len(s.Password))
	b[0] = sessionFormat
	binary.BigEndian.PutUint64(b[1:], uint64(s.TimeoutMs)) // bit pattern
	binary.BigEndian.PutUint64(b[9:], s.LastSeq)
	return append(b, s.Password...)
}

// decodeSession parses the record of session id, copying it out of b.
func decodeSession(id uint64, b []byte) (Session, error) {
	if len(b) < sessionHeaderSize || b[0] != sessionFormat {
		return Session{}, fmt.Errorf("fsm: session %d record of %d bytes: %w", id, len(b), grove.ErrCorrupt)
	}
	return Session{
		ID:        id,
		TimeoutMs: int64(binary.BigEndian.Uint64(b[1:])), // bit pattern
		LastSeq:   binary.BigEndian.Uint64(b[9:]),
		Password:  append([]byte(nil), b[sessionHeaderSize:]...),
	}, nil
}

// session loads session id from the store.
func (st *store) session(id uint64) (Session, bool, error) {
	v := st.sessions.Get(u64(id))
	if v == nil {
		return Session{}, false, nil
	}
	s, err := decodeSession(id, v)
	if err != nil {
		return Session{}, false, err
	}
	return s, true, nil
}

// putSession writes s to the store.
func (st *store) putSession(s *Session) error {
	if err := st.sessions.Put(u64(s.ID), encodeSession(s)); err != nil {
		return fmt.Errorf("fsm: write session %d: %w", s.ID, err)
	}
	return nil
}

// Sessions returns every session in id order. The returned records are
// copies. Errors are storage failures or wrap grove.ErrCorrupt.
func Sessions(tx Tx) ([]Session, error) {
	st, err := openStore(tx)
	if err != nil {
		return nil, err
	}
	var out []Session
	err = st.sessions.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("fsm: session key of %d bytes: %w", len(k), grove.ErrCorrupt)
		}
		s, err := decodeSession(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SessionByID returns session id and whether it exists. The returned record
// is a copy. Errors are storage failures or wrap grove.ErrCorrupt.
func SessionByID(tx Tx, id uint64) (Session, bool, error) {
	st, err := openStore(tx)
	if err != nil {
		return Session{}, false, err
	}
	return st.session(id)
}

// sessionEphemerals returns the paths of the ephemerals of session that
// start with prefix, in path order.
func (st *store) sessionEphemerals(session uint64, prefix string) []string {
	var out []string
	p := ephemeralKey(session, prefix)
	c := st.ephemerals.Cursor()
	for k, _ := c.Seek(p); k != nil && hasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[8:]))
	}
	return out
}

// closeSession deletes every ephemeral of session id (in path order, with
// the events of a delete), its cached results and its record. The node
// changes go to the applier's overlay; the session and result changes are
// written directly, so the caller must flush the overlay.
func (a *applier) closeSession(id uint64) error {
	for _, path := range a.st.sessionEphemerals(id, "") {
		n, err := a.ov.get(path)
		if err != nil {
			return err
		}
		if n == nil {
			return fmt.Errorf("fsm: ephemeral %q of session %d has no node: %w", path, id, grove.ErrCorrupt)
		}
		if err := a.removeNode(path, n); err != nil {
			return err
		}
	}
	if err := deletePrefix(a.st.results, u64(id)); err != nil {
		return err
	}
	if s, ok, err := a.st.session(id); err != nil {
		return err
	} else if ok && len(s.Password) > 0 {
		if err := a.st.tokens.Delete(s.Password); err != nil {
			return fmt.Errorf("fsm: delete session token: %w", err)
		}
	}
	if err := a.st.sessions.Delete(u64(id)); err != nil {
		return fmt.Errorf("fsm: delete session %d: %w", id, err)
	}
	return nil
}
