package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// dial opens the session of a znode command; tests replace it to get hold
// of the session.
var dial = client.Dial

// pageSize is how many children one listing request asks for.
const pageSize = 1000

// conn is the session of one znode command. Every request gets at most
// timeout.
type conn struct {
	s       *client.Session
	timeout time.Duration
}

// connect opens a session on g.servers, asking for g.timeout as the
// session timeout, and syncs it: the command then sees every write
// acknowledged before it started, also when its server is a follower that
// lags (grove set, then grove get, reads the new data back). Connecting
// and syncing give up after g.timeout, or when ctx ends.
func (g *globals) connect(ctx context.Context) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	// A command fails at once, saying so, when nothing listens at any of
	// its servers, instead of retrying until the timeout.
	opts := append([]client.Option{client.WithTimeout(g.timeout), client.WithFailFast()}, g.opts...)
	s, err := dial(dctx, g.servers, opts...)
	if err == nil {
		c := &conn{s: s, timeout: g.timeout}
		if err = s.Sync(dctx); err == nil {
			return c, nil
		}
		_ = c.close(ctx)
	}
	servers := strings.Join(g.servers, ",")
	if ctx.Err() == nil && dctx.Err() != nil {
		return nil, fmt.Errorf("connect to %s: gave up after %v: %w", servers, g.timeout, err)
	}
	return nil, fmt.Errorf("connect to %s: %w", servers, err)
}

// close closes the session. It gets the request timeout even when ctx has
// ended, so an interrupted command still deletes its ephemeral znodes at
// once rather than leaving them to the session's expiry.
func (c *conn) close(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	return c.s.Close(cctx)
}

// do runs one request, fn, with at most the request timeout; a request cut
// short by the timeout (not by ctx) says so.
func (c *conn) do(ctx context.Context, fn func(ctx context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := fn(rctx)
	if err != nil && ctx.Err() == nil && rctx.Err() != nil {
		return fmt.Errorf("no answer within %v: %w", c.timeout, err)
	}
	return err
}

// pages lists the children of path a page at a time, in byte order, and
// calls fn with each page; more says whether further pages follow. It
// never asks for a whole big directory at once.
func (c *conn) pages(ctx context.Context, path string, fn func(names []string, more bool) error) error {
	after := ""
	for {
		var names []string
		var more bool
		err := c.do(ctx, func(ctx context.Context) (err error) {
			names, more, err = c.s.ChildrenPage(ctx, path, after, pageSize)
			return err
		})
		if err != nil {
			return err
		}
		more = more && len(names) > 0
		if err := fn(names, more); err != nil {
			return err
		}
		if !more {
			return nil
		}
		after = names[len(names)-1]
	}
}

// walkNode is one znode below the root of a walk.
type walkNode struct {
	path  string
	name  string
	depth int  // 1 for the children of the root
	last  bool // the last of its siblings
}

// walkFuncs are walk's callbacks; either may be nil. An error from one
// ends the walk with that error.
type walkFuncs struct {
	enter func(n walkNode) error // before the node's children
	leave func(n walkNode) error // after them
}

// walk visits every znode below path depth-first, each right after its
// parent and siblings in byte order, paging through big directories. A
// node deleted during the walk is skipped; a missing root is an error.
// depth is path's own depth: 0 for the root of the walk.
func (c *conn) walk(ctx context.Context, path string, depth int, fns walkFuncs) error {
	var inner error // from a callback or the walk below a child: never skipped
	err := c.pages(ctx, path, func(names []string, more bool) error {
		for i, name := range names {
			n := walkNode{path: joinPath(path, name), name: name, depth: depth + 1, last: !more && i == len(names)-1}
			if inner = c.visit(ctx, n, fns); inner != nil {
				return inner
			}
		}
		return nil
	})
	if inner != nil {
		return inner
	}
	if depth > 0 && errors.Is(err, grove.ErrNoNode) {
		return nil // deleted while we walked
	}
	if depth > 0 && err != nil {
		return opErr("list", path, err) // name the znode below the root that failed
	}
	return err
}

// visit enters n, walks below it and leaves it.
func (c *conn) visit(ctx context.Context, n walkNode, fns walkFuncs) error {
	if fns.enter != nil {
		if err := fns.enter(n); err != nil {
			return err
		}
	}
	if err := c.walk(ctx, n.path, n.depth, fns); err != nil {
		return err
	}
	if fns.leave != nil {
		return fns.leave(n)
	}
	return nil
}

// joinPath returns the path of child name of parent.
func joinPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// cliTLS builds the client side's TLS config from --tls-ca, --tls-cert and
// --tls-key (nil: plain TCP).
func cliTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certPool("--tls-ca", caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, usagef("--tls-cert: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// opErr is the CLI's "op path: cause" for a failed call on path. A
// client.PathError for the same path gives its cause, so that the line
// names the path once ("get /x: node does not exist").
func opErr(op, path string, err error) error {
	var pe *client.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = causeOf(err)
	}
	return &cliError{msg: op + " " + path + ": " + err.Error(), err: err}
}

// cliError is an error with the CLI's message around an error it keeps
// for errors.Is.
type cliError struct {
	msg string
	err error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// causeOf is err without the client's "op path: ", for a line that names
// them already in its own words. What wraps the client's error ("no
// answer within 10s: ...") stays, and so does its identity.
func causeOf(err error) error {
	var pe *client.PathError
	if !errors.As(err, &pe) {
		return err
	}
	return &cliError{msg: strings.Replace(err.Error(), pe.Op+" "+pe.Path+": ", "", 1), err: err}
}
