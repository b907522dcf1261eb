// Package logutil adapts *slog.Logger to the logger interfaces of the
// libraries Grove embeds, so no logger is ever set process-wide.
package logutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// RaftLogger adapts a *slog.Logger to go.etcd.io/raft/v3's Logger
// interface. Fatal and Panic log at error level and then panic, as raft
// expects (raft calls them only on broken invariants).
type RaftLogger struct{ l *slog.Logger }

// Raft returns a raft Logger writing to l.
func Raft(l *slog.Logger) *RaftLogger { return &RaftLogger{l: l.With("component", "raft")} }

func (r *RaftLogger) log(level slog.Level, msg string) {
	r.l.Log(context.Background(), level, msg)
}

// Debug logs at debug level.
func (r *RaftLogger) Debug(v ...any) { r.log(slog.LevelDebug, fmt.Sprint(v...)) }

// Debugf logs at debug level.
func (r *RaftLogger) Debugf(format string, v ...any) {
	r.log(slog.LevelDebug, fmt.Sprintf(format, v...))
}

// Error logs at error level.
func (r *RaftLogger) Error(v ...any) { r.log(slog.LevelError, fmt.Sprint(v...)) }

// Errorf logs at error level.
func (r *RaftLogger) Errorf(format string, v ...any) {
	r.log(slog.LevelError, fmt.Sprintf(format, v...))
}

// Info logs at info level.
func (r *RaftLogger) Info(v ...any) { r.log(slog.LevelInfo, fmt.Sprint(v...)) }

// Infof logs at info level.
func (r *RaftLogger) Infof(format string, v ...any) {
	r.log(slog.LevelInfo, fmt.Sprintf(format, v...))
}

// Warning logs at warn level.
func (r *RaftLogger) Warning(v ...any) { r.log(slog.LevelWarn, fmt.Sprint(v...)) }

// Warningf logs at warn level.
func (r *RaftLogger) Warningf(format string, v ...any) {
	r.log(slog.LevelWarn, fmt.Sprintf(format, v...))
}

// Fatal logs at error level and panics.
func (r *RaftLogger) Fatal(v ...any) {
	msg := fmt.Sprint(v...)
	r.log(slog.LevelError, msg)
	fmt.Fprintln(os.Stderr, "raft fatal:", msg)
	panic(msg)
}

// Fatalf logs at error level and panics.
func (r *RaftLogger) Fatalf(format string, v ...any) { r.Fatal(fmt.Sprintf(format, v...)) }

// Panic logs at error level and panics.
func (r *RaftLogger) Panic(v ...any) { r.Fatal(v...) }

// Panicf logs at error level and panics.
func (r *RaftLogger) Panicf(format string, v ...any) { r.Fatal(fmt.Sprintf(format, v...)) }
