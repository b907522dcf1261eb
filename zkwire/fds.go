//go:build unix

package zkwire

import (
	"os"
	"syscall"
)

// fdCounts returns the process's open file descriptors and its limit on
// them (mntr's zk_open_file_descriptor_count and
// zk_max_file_descriptor_count); -1 where the system does not say.
func fdCounts() (open, limit int64) {
	open, limit = -1, -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = int64(len(ents))
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		limit = int64(rl.Cur) // a descriptor limit fits
	}
	return open, limit
}
