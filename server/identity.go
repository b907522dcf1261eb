package server

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/grovekit/grove/core"
)

const (
	idFile   = "node-id"
	leftFile = "LEFT"
)

// loadIdentity returns the node's raft ID, creating a random one on a fresh
// data dir. Raft IDs are never reused: a node that left must start afresh
// with a new data dir (and so a new ID).
func loadIdentity(dir string) (id uint64, fresh bool, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, false, fmt.Errorf("server: data dir %q: %w", dir, err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return 0, false, fmt.Errorf("server: data dir %q is not writable: %w", dir, err)
	}
	_ = os.Remove(probe)
	if _, err := os.Stat(filepath.Join(dir, leftFile)); err == nil {
		return 0, false, fmt.Errorf("server: the node in %q left its cluster; use a new data dir to join again", dir)
	}
	_, dbErr := os.Stat(filepath.Join(dir, "grove.db"))
	// A data dir restored from a backup holds a state machine but no raft
	// state: for bootstrap it is fresh.
	fresh = errors.Is(dbErr, os.ErrNotExist) || core.Seeded(dir)
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 64)
		if perr != nil || id == 0 {
			return 0, false, fmt.Errorf("server: node id file %q is corrupt", path)
		}
		return id, fresh, nil
	case !errors.Is(err, os.ErrNotExist):
		return 0, false, fmt.Errorf("server: read %q: %w", path, err)
	case !fresh:
		return 0, false, fmt.Errorf("server: %q is missing but the data file exists", path)
	}
	var buf [8]byte
	for id == 0 {
		_, _ = rand.Read(buf[:])
		id = binary.BigEndian.Uint64(buf[:]) >> 1 // keep it positive for tools that read it signed
	}
	if err := os.WriteFile(path, []byte(strconv.FormatUint(id, 16)+"\n"), 0o600); err != nil {
		return 0, false, fmt.Errorf("server: write %q: %w", path, err)
	}
	return id, true, nil
}

// markLeft records that the node left, so it never rejoins with its old ID.
func markLeft(dir string) error {
	return os.WriteFile(filepath.Join(dir, leftFile), []byte("this node left its cluster\n"), 0o600)
}
