package core

import "time"

// SetCrashHook sets the hook the crash tests kill the process from (see
// crashHook). Call it before starting any node.
func SetCrashHook(f func(point string)) { crashHook = f }

// SetFlushInterval sets how long applied state may stay unflushed (see
// flushInterval) for the nodes started after it, until restore is called.
// Tests that call it must not run in parallel.
func SetFlushInterval(d time.Duration) (restore func()) {
	old := flushInterval
	flushInterval = d
	return func() { flushInterval = old }
}
