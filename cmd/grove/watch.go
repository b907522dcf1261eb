package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove/client"
)

// setupWatch defines the flags of watch.
func setupWatch(fs *pflag.FlagSet) func([]string) (action, error) {
	recursive := fs.BoolP("recursive", "r", false, "also watch every znode below PATH (then without NodeChildrenChanged events)")
	return func(args []string) (action, error) {
		path := args[0]
		if err := checkPath("watch", path); err != nil {
			return nil, err
		}
		return watchAction(path, *recursive), nil
	}
}

// watchAction sets a persistent watch on path and prints each event as it
// comes: "TYPE PATH" per line, or one JSON document {"type":TYPE,
// "path":PATH,"zxid":N} per line. Once the watch is set, it returns nil
// when ctx ends (the user interrupted) and an error if the session ends
// first.
func watchAction(path string, recursive bool) action {
	return func(ctx context.Context, c *conn, out *output) error {
		var w *client.Watch
		err := c.do(ctx, func(ctx context.Context) (err error) {
			w, err = c.s.AddWatch(ctx, path, recursive)
			return err
		})
		if err != nil {
			return opErr("watch", path, err)
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev, ok := <-w.C:
				if !ok {
					if ctx.Err() != nil {
						return nil
					}
					why := c.s.Err()
					if why == nil {
						why = errors.New("watch removed")
					}
					return fmt.Errorf("watch %s: session ended: %w", path, why)
				}
				if out.json {
					err = out.doc(eventDoc{Type: ev.Type.String(), Path: ev.Path, Zxid: ev.Zxid})
				} else {
					out.printf("%s %s\n", ev.Type, ev.Path)
				}
				if err == nil {
					err = out.flush() // every event goes out at once
				}
				if err != nil {
					return fmt.Errorf("watch %s: write output: %w", path, err)
				}
			}
		}
	}
}
