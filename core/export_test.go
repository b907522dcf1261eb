package core

// SetCrashHook sets the hook the crash tests kill the process from (see
// crashHook). Call it before starting any node.
func SetCrashHook(f func(point string)) { crashHook = f }
