package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/grovekit/grove/backup"
)

// handleBackup streams a plain backup (package backup) of this node's
// state: consistent as of one applied index, taken while writes go on.
// It first syncs with the leader (a quorum read barrier), so every write
// acknowledged anywhere in the cluster before the request is in it, even
// when this node is a follower that lagged.
// A failure after the first byte aborts the response, so the client sees a
// truncated file that fails verification rather than a short one that
// passes.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	if s.node.Status().Applied == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "this node has applied nothing yet"})
		return
	}
	sctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	_, err := s.node.Sync(sctx)
	cancel()
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "cannot sync with the leader: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Grove-Applied", strconv.FormatUint(s.node.Status().Applied, 10))
	// A client that stops reading is cut after BackupStallTimeout, so its
	// read transaction does not pin old pages (and grow the data file)
	// forever.
	h, t, err := backup.Write(r.Context(), s.node, stallWriter{w: w, rc: http.NewResponseController(w), limit: s.cfg.BackupStallTimeout}, backup.Options{})
	if err != nil {
		s.log.Warn("backup failed", "err", err)
		s.backupsFailed.Add(1)
		s.auditHTTP(r, "backup", "backup", "", err)
		panic(http.ErrAbortHandler)
	}
	s.auditHTTP(r, "backup", "backup", fmt.Sprintf("index %d, %d znodes", h.Index, t.Znodes), nil)
	s.log.Info("backup streamed", "index", h.Index, "znodes", t.Znodes, "data_bytes", t.DataBytes, "remote", r.RemoteAddr)
}

// Restore makes dir a restored node's data dir in one step: it creates a
// scratch dir next to dir with a new node identity, calls seed with it and
// the node's raft ID (seed fills it, e.g. with backup.Seed), and only if
// seed succeeds moves it to dir. dir must not exist or be empty, so
// nothing is overwritten, and a failed restore leaves nothing behind.
// Nodes restored from the same backup and started together with
// BootstrapExpect form a new cluster.
func Restore(dir string, seed func(scratch string, id uint64) error) (id uint64, err error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 0, fmt.Errorf("server: restore: data dir %q is not empty; restore into a new one", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("server: restore: %w", err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return 0, fmt.Errorf("server: restore: %w", err)
	}
	scratch, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restoring-")
	if err != nil {
		return 0, fmt.Errorf("server: restore: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(scratch)
		}
	}()
	if id, _, err = loadIdentity(scratch); err != nil {
		return 0, err
	}
	if err = seed(scratch, id); err != nil {
		return 0, err
	}
	if err = os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("server: restore: %w", err)
	}
	if err = os.Rename(scratch, dir); err != nil {
		return 0, fmt.Errorf("server: restore: %w", err)
	}
	if d, derr := os.Open(parent); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return id, nil
}
