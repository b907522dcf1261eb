//go:build unix

package core

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckDataDirFree returns an error wrapping ErrDataDirInUse, at once, if
// another process holds dir's data file open as a running node does; nil
// if the file is free or does not exist. A server calls it before it
// announces itself anywhere (gossip), so a second server started on a
// busy data dir leaves no trace. StartNode checks again, for good.
func CheckDataDirFree(dir string) error {
	f, err := os.Open(filepath.Join(dir, dataFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("core: data dir %q: %w", dir, err)
	}
	defer func() { _ = f.Close() }() // closing releases the probe's lock
	// A running node holds an exclusive lock (bbolt's flock): a shared one
	// cannot be had meanwhile.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil { // a file descriptor
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return dataDirInUse(dir)
		}
		return fmt.Errorf("core: data dir %q: lock probe: %w", dir, err)
	}
	return nil
}
