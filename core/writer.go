package core

import (
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/grovekit/grove/internal/fsm"
)

// The log writer is the goroutine that makes raft's MsgStorageAppend
// messages durable (raft's AsyncStorageWrites), so the loop never waits
// for the disk: it keeps stepping messages, taking proposals, sending
// heartbeats and applying committed entries while an append syncs. Jobs
// are written in order; whatever has queued up while one batch synced goes
// into the next bbolt transaction together (group commit across Readys).
// The loop learns of finished batches through a signal and only then
// updates the in-memory log and delivers the messages raft attached to the
// appends (the acknowledgements that must follow durability).
//
// Both queues are unbounded slices behind a mutex with a one-slot signal
// channel, so neither side ever blocks on the other; raft's own limits
// (MaxInflightMsgs, MaxUncommittedEntriesSize) bound what can queue.

// appendJob is one unit of work for the log writer.
type appendJob struct {
	m *pb.Message // a MsgStorageAppend without a snapshot; nil for a flush-only job
	// compactTo, if non-zero, deletes log entries up to it (bounded per
	// batch; compacted reports whether all of them went).
	compactTo uint64
	compacted bool
	// frozen, if set, is a state layer to write with the job; frozenIndex
	// is the applied index it brings bbolt to.
	frozen      *fsm.Layer
	frozenIndex uint64
	// done, if set, gets the result once the job is durable.
	done chan error
	idle bool // queued by an idle tick (for the crash tests' points)
}

// logWriter queues jobs for the writer goroutine and finished jobs back.
type logWriter struct {
	workc chan struct{} // signals the writer (one slot)
	donec chan struct{} // signals the loop (one slot)
	exitc chan struct{} // closed when the writer goroutine has exited

	// lastHS is the newest hard state the writer has seen (written or not);
	// writer goroutine only.
	lastHS *pb.HardState
	// inFlight counts jobs handed over and not yet taken back; loop only.
	inFlight int

	// mu guards the fields below it.
	mu      sync.Mutex
	pending []*appendJob // queued for the writer
	stopped bool         // the loop stops: drain pending and exit
	done    []*appendJob // written, not yet taken by the loop
	err     error        // the write that failed; the writer has exited
}

// hardStateOf returns the hard state a MsgStorageAppend carries, or nil if
// it carries none (raft leaves Term, Vote and Commit zero then).
func hardStateOf(m *pb.Message) *pb.HardState {
	if m.GetTerm() == 0 && m.GetVote() == 0 && m.GetCommit() == 0 {
		return nil
	}
	return &pb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
}

func newLogWriter() *logWriter {
	return &logWriter{workc: make(chan struct{}, 1), donec: make(chan struct{}, 1), exitc: make(chan struct{})}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// enqueue hands a job to the writer (loop only).
func (w *logWriter) enqueue(j *appendJob) {
	w.mu.Lock()
	w.pending = append(w.pending, j)
	w.mu.Unlock()
	w.inFlight++
	signal(w.workc)
}

// take returns the finished jobs in order, and the writer's error (loop
// only).
func (w *logWriter) take() ([]*appendJob, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	jobs := w.done
	w.done = nil
	w.inFlight -= len(jobs)
	return jobs, w.err
}

// stop makes the writer finish what is queued and exit, and waits for it.
func (w *logWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	signal(w.workc)
	<-w.exitc
}

// maxWriteBatch bounds the jobs one transaction writes.
const maxWriteBatch = 1024

// writeLoop is the writer goroutine.
func (n *Node) writeLoop() {
	w := n.writer
	defer close(w.exitc)
	for {
		w.mu.Lock()
		batch := w.pending[:min(len(w.pending), maxWriteBatch)]
		w.pending = w.pending[len(batch):]
		stopped := w.stopped
		w.mu.Unlock()
		if len(batch) == 0 {
			if stopped {
				return
			}
			<-w.workc
			continue
		}
		err := n.writeBatch(batch)
		w.mu.Lock()
		if err != nil {
			w.err = err
		} else {
			w.done = append(w.done, batch...)
		}
		w.mu.Unlock()
		for _, j := range batch {
			if j.done != nil {
				j.done <- err
			}
		}
		signal(w.donec)
		if err != nil {
			return
		}
	}
}

// writeBatch makes a batch of jobs durable in one bbolt transaction (writer
// goroutine). The newest hard state of the batch is written; when a state
// layer goes with it, the newest hard state seen is written too, so the
// file's commit index is never below the applied index beside it. A batch
// with nothing that must be durable (commit-index changes only) skips the
// disk: raft rebuilds the commit index after a restart.
func (n *Node) writeBatch(batch []*appendJob) error {
	w := n.writer
	var hs *pb.HardState
	entries, durable := 0, false
	for _, j := range batch {
		if m := j.m; m != nil {
			if h := hardStateOf(m); h != nil {
				prev := w.lastHS
				hs, w.lastHS = h, h
				if prev == nil || prev.GetTerm() != h.GetTerm() || prev.GetVote() != h.GetVote() {
					durable = true
				}
			}
			entries += len(m.Entries)
			durable = durable || len(m.Entries) > 0 || len(m.Responses) > 0
		}
		if j.frozen != nil {
			hs = w.lastHS
			durable = true
		}
		durable = durable || j.compactTo > 0 || j.done != nil
	}
	if !durable {
		return nil
	}
	start := time.Now()
	err := n.db.Update(func(tx *bbolt.Tx) error {
		for _, j := range batch {
			if j.compactTo > 0 {
				done, err := compactLog(tx, j.compactTo, maxCompactPerReady)
				if err != nil {
					return err
				}
				j.compacted = done
			}
			if j.m != nil {
				if err := saveEntries(tx, j.m.Entries); err != nil {
					return err
				}
			}
			if j.frozen != nil {
				if err := j.frozen.FlushTo(tx); err != nil {
					return err
				}
			}
		}
		if hs != nil {
			return saveHardState(tx, hs)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("core: persist log: %w", err)
	}
	crashPoint("log-committed")
	for _, j := range batch {
		if j.frozen != nil {
			if j.idle {
				crashPoint("idle-flush-committed")
			} else {
				crashPoint("flush-committed")
			}
		}
	}
	n.stats.readies.Add(1)
	n.stats.appended.Add(uint64(entries))
	if o := n.cfg.Observer; o != nil {
		o.ObservePersist(time.Since(start), entries, 0)
	}
	return nil
}

// appendsDone takes the jobs the writer finished, in order: their entries
// and hard state go into the in-memory log, flushed layers are dropped, and
// the messages raft attached are delivered (loop only).
func (n *Node) appendsDone() error {
	jobs, err := n.writer.take()
	for _, j := range jobs {
		if j.compactTo > 0 {
			n.loopState.compacting = false
			if j.compacted {
				n.loopState.compactTo = 0
			}
		}
		if j.frozen != nil {
			n.flushed(j.frozenIndex)
		}
		if j.m == nil {
			continue
		}
		if err := n.stableAppend(j.m); err != nil {
			return err
		}
	}
	return err
}

// stableAppend records a durable MsgStorageAppend in the in-memory log and
// delivers its responses: those to this node are stepped into raft, the
// others sent.
func (n *Node) stableAppend(m *pb.Message) error {
	if hs := hardStateOf(m); hs != nil {
		if err := n.ms.SetHardState(hs); err != nil {
			return fmt.Errorf("core: memory log hard state: %w", err)
		}
	}
	if err := n.ms.Append(m.Entries); err != nil {
		return fmt.Errorf("core: append to memory log: %w", err)
	}
	n.deliver(m.Responses)
	return nil
}

// deliver steps the responses addressed to this node and sends the rest.
func (n *Node) deliver(msgs []*pb.Message) {
	var out []*pb.Message
	for _, r := range msgs {
		if r.GetTo() == n.cfg.ID {
			if err := n.rn.Step(r); err != nil {
				n.log.Debug("step local response", "type", r.GetType().String(), "err", err)
			}
			continue
		}
		out = append(out, r)
	}
	n.send(out)
}

// waitWriter processes finished jobs until the writer has none in hand
// (loop only): before a snapshot install, which must not overtake them.
func (n *Node) waitWriter() error {
	for n.writer.inFlight > 0 {
		select {
		case <-n.writer.donec:
		case <-n.writer.exitc:
		}
		if err := n.appendsDone(); err != nil {
			return err
		}
	}
	return nil
}
