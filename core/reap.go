package core

import (
	"github.com/grovekit/grove/internal/command"
	"github.com/grovekit/grove/internal/fsm"
)

// maxReapBatch bounds the znodes one reap entry deletes.
const maxReapBatch = 256

// reap proposes the deletion of empty containers and expired TTL nodes
// every ReapInterval (leader, loop goroutine). The state machine re-checks
// each candidate with the entry's time, so a stale decision is harmless.
func (n *Node) reap() {
	t := now()
	ls := &n.loopState
	if t.Sub(ls.lastReap) < n.cfg.ReapInterval || t.Before(ls.reapUntil) {
		return
	}
	ls.lastReap = t
	var cands []fsm.ReapCandidate
	err := n.readState(func(tx fsm.Tx) error {
		var err error
		cands, err = fsm.ReapCandidates(tx, t.UnixMilli(), maxReapBatch)
		return err
	})
	if err != nil {
		n.log.Error("find reap candidates", "err", err)
		return
	}
	if len(cands) == 0 {
		return
	}
	items := make([]command.ReapItem, len(cands))
	for i, c := range cands {
		items[i] = command.ReapItem{Path: c.Path, Czxid: c.Czxid}
	}
	data, err := command.Encode(&command.Reap{Items: items})
	if err != nil {
		n.log.Error("encode reap", "err", err)
		return
	}
	// Do not propose again until this one had time to apply.
	ls.reapUntil = t.Add(n.cfg.RetryInterval)
	n.propose(proposal{data: data, errc: make(chan error, 1)})
}
