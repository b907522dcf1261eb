// Package client is the Go API of Grove: a Session is one ZooKeeper-style
// session (ephemeral nodes, watches, ordered writes) against a cluster.
//
// The same *Session type serves embedded use (core.Node.Session: the
// session talks to the local node in process) and remote use over the
// native protocol (Dial). Recipes are written once against it.
//
// # Usage
//
//	s, err := node.Session(ctx, client.WithTimeout(10*time.Second))
//	defer s.Close(ctx)
//	path, err := s.Create(ctx, "/app/lock-", nil, grove.ModeEphemeralSequential, grove.OpenACLUnsafe)
//	data, stat, err := s.Get(ctx, "/app/config")
//	data, stat, ch, err := s.GetW(ctx, "/app/config") // one-shot watch
//	ev := <-ch
//
// # Guarantees
//
// Writes of one session take effect and are answered in the order they
// were issued, also when issued from several goroutines (each gets its
// sequence number under one lock). A write whose ctx ends before its answer
// has an unknown outcome; the session keeps resolving it in the background
// so its later writes are not held up. Reads never see state older than
// anything the session has already seen. A watch event is delivered before
// the answer of any read or write that shows the change.
//
// # Session life
//
// The session sends keep-alives every third of its timeout; Deadline says
// until when the cluster keeps it at the latest. Events reports state
// changes; Done closes when the session is gone for good (expired or
// closed) and Err says why. Every watch channel is closed then.
package client
