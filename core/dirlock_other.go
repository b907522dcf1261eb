//go:build !unix

package core

// CheckDataDirFree returns nil: without flock the check is left to
// StartNode, which refuses a busy data dir after bbolt's lock timeout.
func CheckDataDirFree(string) error { return nil }
