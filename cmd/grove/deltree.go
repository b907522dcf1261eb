package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"github.com/grovekit/grove"
)

// Limits of one delete batch: a multi of at most this many deletes and
// this many path bytes. The server's own limit on a request (four times
// its largest znode, 4 MiB by default) is well above; a server configured
// lower answers grove.ErrTooLarge and the batch is split.
const (
	deleteBatchOps   = 1000
	deleteBatchBytes = 256 << 10
)

// listConcurrency is how many children listings a recursive delete keeps
// in flight on its session.
const listConcurrency = 16

// subtree lists every znode below root (root excluded), each after its
// parent, listing up to listConcurrency directories at once. A znode
// deleted while it is listed is left out; a missing root is an error.
func (c *conn) subtree(ctx context.Context, root string) ([]string, error) {
	var (
		mu    sync.Mutex
		found []string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	var list func(path string, isRoot bool) error
	list = func(path string, isRoot bool) error {
		err := c.pages(gctx, path, func(names []string, _ bool) error {
			paths := make([]string, len(names))
			for i, name := range names {
				paths[i] = joinPath(path, name)
			}
			mu.Lock()
			found = append(found, paths...)
			mu.Unlock()
			for _, p := range paths {
				// With every slot taken, list it here: waiting for a slot
				// while holding one could deadlock the group.
				if !g.TryGo(func() error { return list(p, false) }) {
					if err := list(p, false); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if !isRoot && errors.Is(err, grove.ErrNoNode) {
			return nil // deleted while we listed
		}
		return err
	}
	if err := list(root, true); err != nil {
		_ = g.Wait()
		return nil, err
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return found, nil
}

// deleteOrder sorts paths deepest first, so every znode comes before its
// parent; among znodes of one depth, in byte order.
func deleteOrder(paths []string) {
	slices.SortFunc(paths, func(a, b string) int {
		return cmp.Or(strings.Count(b, "/")-strings.Count(a, "/"), strings.Compare(a, b))
	})
}

// batches splits paths, in order, into runs of at most maxOps paths and
// maxBytes path bytes (a single longer path is a batch of its own).
func batches(paths []string, maxOps, maxBytes int) [][]string {
	var out [][]string
	start, bytes := 0, 0
	for i, p := range paths {
		if i > start && (i-start == maxOps || bytes+len(p) > maxBytes) {
			out = append(out, paths[start:i])
			start, bytes = i, 0
		}
		bytes += len(p)
	}
	if start < len(paths) {
		out = append(out, paths[start:])
	}
	return out
}

// deleteTreeBatched deletes everything below path and then path itself
// (if version is not -1, only at that version), in multis of up to
// deleteBatchOps deletes, deepest first; each batch is atomic, the whole
// is not. With atomic set it deletes the whole subtree in one multi, or
// nothing. progress, if not nil, is told how many znodes are gone out of
// how many. It returns how many znodes it deleted. A znode someone else
// deleted meanwhile is no error; one created meanwhile under a znode
// being deleted fails the delete with grove.ErrNotEmpty.
func (c *conn) deleteTreeBatched(ctx context.Context, path string, version int32, atomic bool, progress func(done, total int)) (int, error) {
	below, err := c.subtree(ctx, path)
	if err != nil {
		return 0, err
	}
	deleteOrder(below)
	total := len(below) + 1
	if atomic {
		ops := make([]grove.Op, 0, total)
		for _, p := range below {
			ops = append(ops, grove.DeleteOp(p, -1))
		}
		ops = append(ops, grove.DeleteOp(path, version))
		if err := c.multi(ctx, ops); err != nil {
			if errors.Is(err, grove.ErrTooLarge) {
				return 0, fmt.Errorf("%d znodes are too many for one transaction; delete without --atomic: %w", total, err)
			}
			return 0, err
		}
		if progress != nil {
			progress(total, total)
		}
		return total, nil
	}
	done := 0
	for _, batch := range batches(below, deleteBatchOps, deleteBatchBytes) {
		n, err := c.deleteBatch(ctx, batch)
		done += n
		if err != nil {
			return done, err
		}
		if progress != nil {
			progress(done, total)
		}
	}
	if err := c.do(ctx, func(ctx context.Context) error { return c.s.Delete(ctx, path, version) }); err != nil {
		return done, err
	}
	if progress != nil {
		progress(done+1, total)
	}
	return done + 1, nil
}

// deleteBatch deletes paths (children before parents) in one multi and
// returns how many it deleted. A path someone else deleted meanwhile is
// dropped and the rest retried; a batch the server finds too large is
// split in two.
func (c *conn) deleteBatch(ctx context.Context, paths []string) (int, error) {
	for len(paths) > 0 {
		ops := make([]grove.Op, len(paths))
		for i, p := range paths {
			ops[i] = grove.DeleteOp(p, -1)
		}
		var res []grove.OpResult
		err := c.do(ctx, func(ctx context.Context) (err error) {
			res, err = c.s.Multi(ctx, ops...)
			return err
		})
		switch {
		case err == nil:
			return len(paths), nil
		case errors.Is(err, grove.ErrTooLarge) && len(paths) > 1:
			half := len(paths) / 2
			n, err := c.deleteBatch(ctx, paths[:half])
			if err != nil {
				return n, err
			}
			m, err := c.deleteBatch(ctx, paths[half:])
			return n + m, err
		case errors.Is(err, grove.ErrNoNode):
			i := failedOp(res)
			if i < 0 {
				return 0, err
			}
			paths = slices.Delete(slices.Clone(paths), i, i+1)
		default:
			return 0, opErr("delete", failedPath(paths, res), err)
		}
	}
	return 0, nil
}

// multi runs ops as one transaction within the command's timeout.
func (c *conn) multi(ctx context.Context, ops []grove.Op) error {
	return c.do(ctx, func(ctx context.Context) error {
		_, err := c.s.Multi(ctx, ops...)
		return err
	})
}

// failedOp returns the index of the op whose error failed a multi, or -1.
func failedOp(res []grove.OpResult) int {
	for i, r := range res {
		if r.Err != nil && !errors.Is(r.Err, grove.ErrRuntimeInconsistency) {
			return i
		}
	}
	return -1
}

// failedPath names the path of the op that failed a multi, or the first.
func failedPath(paths []string, res []grove.OpResult) string {
	if i := failedOp(res); i >= 0 && i < len(paths) {
		return paths[i]
	}
	return paths[0]
}

// deleteProgress returns a progress callback drawing "deleted N/M" on w,
// or nil when show is false.
func deleteProgress(w io.Writer, show bool) func(done, total int) {
	if !show {
		return nil
	}
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("delete"),
				progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
		}
		_ = bar.Set(done)
	}
}
