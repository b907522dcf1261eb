package main

import (
	"fmt"
	"io"
	"sync"
)

// narrator prints the demo's story. Milestones start with "==> " so a
// reader (or a test) can follow the scenes; explanations are indented.
// Safe for concurrent use: lines never interleave.
type narrator struct {
	mu sync.Mutex
	w  io.Writer
}

func newNarrator(w io.Writer) *narrator { return &narrator{w: w} }

// milestone prints one "==> " line.
func (n *narrator) milestone(format string, args ...any) { n.line("==> ", format, args...) }

// say prints an indented line of explanation.
func (n *narrator) say(format string, args ...any) { n.line("    ", format, args...) }

// blank prints an empty line between scenes.
func (n *narrator) blank() { n.line("", "") }

func (n *narrator) line(prefix, format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, _ = fmt.Fprintf(n.w, prefix+format+"\n", args...)
}
