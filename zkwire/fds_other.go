//go:build !unix

package zkwire

// fdCounts reports nothing where descriptors cannot be counted.
func fdCounts() (open, limit int64) { return -1, -1 }
