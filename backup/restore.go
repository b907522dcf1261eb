package backup

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/core"
	"github.com/grovekit/grove/internal/fsm"
)

// Seed restores the backup read from r into dir, a new data dir for the
// node with raft ID id (see core.Seed): bootstrapped together with the
// other nodes seeded from the same file, it forms a new cluster holding
// exactly the backed-up tree. The file is verified as it is read; on any
// error dir is left incomplete, so seed into a scratch dir and move it in
// place only on success (server.Restore does).
func Seed(r io.Reader, key []byte, dir string, id uint64) (Header, Totals, error) {
	rd, err := NewReader(r, key)
	if err != nil {
		return Header{}, Totals{}, err
	}
	h := rd.Header()
	if _, err := fsm.NewTreeCheck(h.Index); err != nil {
		return h, Totals{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	err = core.Seed(dir, id, h.Index, func(put func(string, []byte) error) error {
		for {
			path, rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := put(path, rec); err != nil {
				if errors.Is(err, grove.ErrCorrupt) {
					return fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				return err
			}
		}
	})
	if err != nil {
		return h, Totals{}, err
	}
	return h, rd.Totals(), nil
}

// Summary describes a verified backup file's content.
type Summary struct {
	Header     Header
	Totals     Totals
	Containers int
	TTL        int
	Sequential int
	// Largest are the subtrees with the most znodes (below the root), most
	// first.
	Largest []Subtree
}

// Subtree is a path and the number of znodes in it, itself included.
type Subtree struct {
	Path   string
	Znodes int
}

// Inspect reads and verifies a whole backup. dump, if not nil, is called
// for every znode with its path and decoded content.
func Inspect(r io.Reader, key []byte, top int, dump func(path string, info fsm.NodeInfo) error) (Summary, error) {
	rd, err := NewReader(r, key)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Header: rd.Header()}
	// The same checks as a restore's import, so Inspect accepts exactly
	// the files Seed restores.
	check, err := fsm.NewTreeCheck(sum.Header.Index)
	if err != nil {
		return sum, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	sizes := map[string]int{}
	for {
		path, rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, err
		}
		info, err := check.Add(path, rec)
		if err != nil {
			return sum, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		switch {
		case info.Mode.IsContainer():
			sum.Containers++
		case info.Mode.IsTTL():
			sum.TTL++
		}
		if info.Mode.IsSequential() {
			sum.Sequential++
		}
		for p := path; p != "/"; p = grove.Parent(p) {
			sizes[p]++
		}
		if dump != nil {
			if err := dump(path, info); err != nil {
				return sum, err
			}
		}
	}
	sum.Totals = rd.Totals()
	for p, n := range sizes {
		sum.Largest = append(sum.Largest, Subtree{Path: p, Znodes: n})
	}
	sort.Slice(sum.Largest, func(i, j int) bool {
		a, b := sum.Largest[i], sum.Largest[j]
		if a.Znodes != b.Znodes {
			return a.Znodes > b.Znodes
		}
		return strings.Compare(a.Path, b.Path) < 0
	})
	if len(sum.Largest) > top {
		sum.Largest = sum.Largest[:top]
	}
	return sum, nil
}
