package backup

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
)

// Write writes a backup of n's state to w: every znode that outlives its
// session, as of one applied index. It reads inside one read transaction of
// the node's data file, so the copy is consistent while writes go on (they
// are not paused; the transaction only keeps the pages it reads from being
// reused until it ends). ctx cancels the copy between znodes.
func Write(ctx context.Context, n *core.Node, w io.Writer, opts Options) (Header, Totals, error) {
	st := n.Status()
	h := Header{
		ClusterID: n.ClusterID(),
		Members:   len(st.Voters) + len(st.Learners),
		Source:    strconv.FormatUint(n.ID(), 16),
		Created:   time.Now().UTC().Truncate(time.Millisecond),
	}
	var totals Totals
	err := n.View(func(tx *bbolt.Tx) error {
		var err error
		if h.Index, _, err = fsm.Applied(fsm.Bolt(tx)); err != nil {
			return err
		}
		bw, err := NewWriter(w, h, opts)
		if err != nil {
			return err
		}
		h.Format, h.Gzip, h.Encrypted = Version, opts.Gzip, opts.Key != nil
		skipped, err := fsm.Export(fsm.Bolt(tx), func(path string, rec []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			info, err := fsm.DecodeRecord(rec)
			if err != nil {
				return err
			}
			return bw.Node(path, rec, len(info.Data))
		})
		if err != nil {
			return err
		}
		bw.SkipEphemerals(skipped)
		totals = bw.Totals()
		return bw.Close()
	})
	if err != nil {
		return h, totals, fmt.Errorf("backup: %w", err)
	}
	return h, totals, nil
}

// Copy re-encodes a backup read from r (verifying it as it goes) into w
// with opts, keeping its header. It is how a client turns a node's plain
// backup stream into the file it keeps. progress, if not nil, is called
// with the bytes of r consumed so far.
func Copy(w io.Writer, r io.Reader, key []byte, opts Options, progress func(int64)) (Header, Totals, error) {
	rd, err := NewReader(r, key)
	if err != nil {
		return Header{}, Totals{}, err
	}
	bw, err := NewWriter(w, rd.Header(), opts)
	if err != nil {
		return rd.Header(), Totals{}, err
	}
	for {
		path, rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rd.Header(), Totals{}, err
		}
		info, err := fsm.DecodeRecord(rec)
		if err != nil {
			return rd.Header(), Totals{}, fmt.Errorf("%w: %q: %v", ErrCorrupt, path, err)
		}
		if err := bw.Node(path, rec, len(info.Data)); err != nil {
			return rd.Header(), Totals{}, err
		}
		if progress != nil && rd.seen.Znodes%1024 == 0 {
			progress(rd.Read())
		}
	}
	bw.SkipEphemerals(int(rd.Totals().Ephemerals)) // a count
	if err := bw.Close(); err != nil {
		return rd.Header(), Totals{}, err
	}
	if progress != nil {
		progress(rd.Read())
	}
	h := rd.Header()
	h.Gzip, h.Encrypted = opts.Gzip, opts.Key != nil
	return h, bw.Totals(), nil
}
