package fsm

import (
	"github.com/grovekit/grove/internal/command"
)

// ReapCandidates returns up to limit (all if limit <= 0) nodes due for
// reaping at nowMs, in path order: containers with no children whose child
// counter moved (they once had a child), and TTL nodes with no children
// whose data last changed more than their TTL before nowMs. The leader
// proposes them in a KindReap entry, which re-checks each one. Errors are
// storage failures or wrap grove.ErrCorrupt.
func ReapCandidates(tx Tx, nowMs int64, limit int) ([]ReapCandidate, error) {
	st, err := openStore(tx)
	if err != nil {
		return nil, err
	}
	var out []ReapCandidate
	c := st.reap.Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		v := st.nodes.Get(k)
		if v == nil {
			continue
		}
		n, err := decodeNode(v)
		if err != nil {
			return nil, err
		}
		if n.dueForReap(nowMs) {
			out = append(out, ReapCandidate{Path: string(k), Czxid: n.czxid})
		}
	}
	return out, nil
}

// applyReap deletes each listed node that still exists with the listed
// Czxid and still qualifies at the entry's time, as a delete would but
// without permission or version checks. Others are skipped silently.
func (a *applier) applyReap(r *command.Reap) (*Outcome, error) {
	a.ov = a.newOverlay()
	for _, item := range r.Items {
		if specialPaths[item.Path] || !validPath(item.Path) {
			continue
		}
		n, err := a.ov.get(item.Path)
		if err != nil {
			return nil, err
		}
		if n == nil || n.czxid != item.Czxid || !n.reapable() || !n.dueForReap(a.now) {
			continue
		}
		if err := a.removeNode(item.Path, n); err != nil {
			return nil, err
		}
	}
	if err := a.ov.flush(); err != nil {
		return nil, err
	}
	return &Outcome{Kind: command.KindReap, Events: a.events, EventACLs: a.acls}, nil
}
