package core

import (
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove/internal/fsm"
	"github.com/grovekit/grove/internal/wal"
)

// Two writer goroutines keep the disk off the loop (raft's
// AsyncStorageWrites), one per file (doc.go, "Storage"):
//
//   - the log writer makes raft's MsgStorageAppend messages durable in the
//     write-ahead log (package internal/wal): whatever queued up while one
//     batch synced goes into the next write and its one fdatasync (group
//     commit across Readys). It also removes log segments behind the
//     durable applied index. This is the only fsync a write waits for.
//   - the state writer commits frozen state layers to the state file
//     (bbolt), in batches, off the critical path.
//
// The loop keeps stepping messages, taking proposals, sending heartbeats
// and applying committed entries while either syncs. It learns of finished
// jobs through a signal and only then updates the in-memory log and
// delivers the messages raft attached to the appends (the acknowledgements
// that must follow durability), or drops the flushed layers.
//
// Both queues are unbounded slices behind a mutex with a one-slot signal
// channel, so neither side ever blocks on the other; raft's own limits
// (MaxInflightMsgs, MaxUncommittedEntriesSize) bound what can queue, and
// the state writer gets one layer per flush interval at most.

// appendJob is one unit of work for a writer.
type appendJob struct {
	m *pb.Message // log: a MsgStorageAppend without a snapshot
	// compactTo, if non-zero, removes log segments whose entries are all
	// at or below it (log).
	compactTo uint64
	// frozen, if set, is a state layer to commit; frozenIndex is the
	// applied index it brings the state file to (state).
	frozen      *fsm.Layer
	frozenIndex uint64
	// done, if set, gets the result once the job is durable.
	done chan error
	idle bool // queued by an idle tick (for the crash tests' points)
}

// logWriter is a writer goroutine's queue: jobs in, finished jobs back.
type logWriter struct {
	workc chan struct{} // signals the writer (one slot)
	donec chan struct{} // signals the loop (one slot)
	exitc chan struct{} // closed when the writer goroutine has exited
	// write makes one batch durable (writer goroutine only).
	write func(batch []*appendJob) error

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

func newLogWriter(write func(batch []*appendJob) error) *logWriter {
	return &logWriter{
		workc: make(chan struct{}, 1), donec: make(chan struct{}, 1), exitc: make(chan struct{}),
		write: write,
	}
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

// maxWriteBatch bounds the jobs one write takes.
const maxWriteBatch = 1024

// run is the writer goroutine.
func (w *logWriter) run() {
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
		err := w.write(batch)
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

// writeLog makes a batch of appends durable with one write and one
// fdatasync of the log (log writer goroutine). The newest hard state of
// the batch is written when its term or vote changed; a change of the
// commit index alone is not worth a sync (raft learns it again after a
// restart, and Start raises it to the durable applied index). Due segment
// removals run after the sync.
func (n *Node) writeLog(batch []*appendJob) error {
	var newest *pb.HardState
	hsChanged := false
	var ents []wal.Entry
	var compactTo uint64
	for _, j := range batch {
		compactTo = max(compactTo, j.compactTo)
		m := j.m
		if m == nil {
			continue
		}
		if h := hardStateOf(m); h != nil {
			if termOrVoteChanged(n.lastHS, h) {
				hsChanged = true
			}
			n.lastHS, newest = h, h
		}
		var err error
		if ents, err = appendWALEntries(ents, m.Entries); err != nil {
			return err
		}
	}
	// Batches are written in order and each is synced before the next, so
	// a batch with nothing new to write (its responses wait only for the
	// batches before it) needs no sync of its own.
	if len(ents) > 0 || hsChanged {
		start := time.Now()
		var state []byte
		if hsChanged {
			var err error
			if state, err = proto.Marshal(newest); err != nil {
				return fmt.Errorf("core: encode hard state: %w", err)
			}
		}
		if err := n.wal.Append(ents, state); err != nil {
			return fmt.Errorf("core: persist log: %w", err)
		}
		if err := n.wal.Sync(); err != nil {
			return fmt.Errorf("core: persist log: %w", err)
		}
		crashPoint("log-committed")
		n.stats.readies.Add(1)
		n.stats.appended.Add(uint64(len(ents)))
		if o := n.cfg.Observer; o != nil {
			o.ObservePersist(time.Since(start), len(ents), 0)
		}
	}
	if compactTo > 0 {
		if _, err := n.wal.Compact(compactTo); err != nil {
			return fmt.Errorf("core: truncate log: %w", err)
		}
	}
	return nil
}

// appendWALEntries appends raft entries to dst in the log's form.
func appendWALEntries(dst []wal.Entry, ents []*pb.Entry) ([]wal.Entry, error) {
	for _, e := range ents {
		data, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("core: encode entry %d: %w", e.GetIndex(), err)
		}
		dst = append(dst, wal.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: data})
	}
	return dst, nil
}

// resetLog restarts the log after an installed snapshot, with the hard
// state and entries its append carries (loop only, while the log writer
// is idle: waitWriter has drained it).
func (n *Node) resetLog(m *pb.Message) error {
	meta := m.GetSnapshot().GetMetadata()
	var state []byte
	if hs := hardStateOf(m); hs != nil {
		var err error
		if state, err = proto.Marshal(hs); err != nil {
			return fmt.Errorf("core: encode hard state: %w", err)
		}
		n.lastHS = hs
	}
	ents, err := appendWALEntries(nil, m.Entries)
	if err != nil {
		return err
	}
	if err := n.wal.Reset(meta.GetIndex(), meta.GetTerm(), state, ents); err != nil {
		return fmt.Errorf("core: restart log after snapshot %d: %w", meta.GetIndex(), err)
	}
	return nil
}

// writeState commits the batch's frozen layers to the state file in one
// bbolt transaction (state writer goroutine). Jobs without a layer only
// wait for the ones before them.
func (n *Node) writeState(batch []*appendJob) error {
	var last *appendJob
	for _, j := range batch {
		if j.frozen != nil {
			last = j
		}
	}
	if last == nil {
		return nil
	}
	start := time.Now()
	err := n.data().Update(func(tx *bbolt.Tx) error {
		for _, j := range batch {
			if j.frozen != nil {
				if err := j.frozen.FlushTo(tx); err != nil {
					return err
				}
				// Written into the transaction, not yet committed.
				crashPoint("state-batch-mid")
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("core: flush state: %w", err)
	}
	if o := n.cfg.Observer; o != nil {
		o.ObserveStateCommit(time.Since(start))
	}
	if last.idle {
		crashPoint("idle-flush-committed")
	} else {
		crashPoint("flush-committed")
	}
	return nil
}

// appendsDone takes the jobs the log writer finished, in order: their
// entries and hard state go into the in-memory log and the messages raft
// attached are delivered (loop only).
func (n *Node) appendsDone() error {
	jobs, err := n.writer.take()
	for _, j := range jobs {
		if j.compactTo > 0 {
			n.loopState.compacting = false
			if j.compactTo >= n.loopState.compactTo {
				n.loopState.compactTo = 0
			}
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

// flushesDone takes the layers the state writer committed, in order, and
// drops them from the read path (loop only).
func (n *Node) flushesDone() error {
	jobs, err := n.stateWriter.take()
	for _, j := range jobs {
		if j.frozen != nil {
			n.flushed(j.frozenIndex)
		}
	}
	return err
}

// nothingToPersist reports whether the append m can be taken as durable
// at once, in the loop, instead of going to the log writer: it carries no
// entries, no snapshot and at most a new commit index (which writeLog does
// not sync either), and the writer is idle, so no earlier append that its
// responses must follow is still on its way to the disk (loop only). When
// it says yes it has also recorded m's hard state as the writer's newest,
// as writeLog would have.
//
// A write's commit produces one such append on every node (the leader's
// commit index, and each follower's on the empty append that carries it);
// taking it here spares a hand-off to the writer goroutine and back per
// node per commit.
func (n *Node) nothingToPersist(m *pb.Message) bool {
	if n.writer.inFlight > 0 || len(m.Entries) > 0 || !raft.IsEmptySnap(m.Snapshot) {
		return false
	}
	h := hardStateOf(m)
	if h == nil {
		return true
	}
	// The writer is idle and took every job back through its mutex, so
	// the loop may read and update lastHS.
	if termOrVoteChanged(n.lastHS, h) {
		return false
	}
	n.lastHS = h
	return true
}

// termOrVoteChanged reports whether h changes the term or vote of prev
// (nil: nothing written yet), the part of a hard state that must be
// synced; a new commit index alone need not be.
func termOrVoteChanged(prev, h *pb.HardState) bool {
	return prev == nil || prev.GetTerm() != h.GetTerm() || prev.GetVote() != h.GetVote()
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

// waitWriter processes finished jobs until neither writer has any in hand
// (loop only): before a snapshot install, which must not overtake them.
func (n *Node) waitWriter() error {
	for n.writer.inFlight > 0 || n.stateWriter.inFlight > 0 {
		select {
		case <-n.writer.donec:
		case <-n.writer.exitc:
		case <-n.stateWriter.donec:
		case <-n.stateWriter.exitc:
		}
		if err := n.appendsDone(); err != nil {
			return err
		}
		if err := n.flushesDone(); err != nil {
			return err
		}
	}
	return nil
}
