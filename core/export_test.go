package core

import (
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// SetCrashHook sets the hook the crash tests kill the process from (see
// crashHook). Call it before starting any node.
func SetCrashHook(f func(point string)) { crashHook = f }

// SetFlushInterval sets how long applied state may stay unflushed (see
// flushInterval) for the nodes started after it, until restore is called.
// Tests that call it must not run in parallel.
func SetFlushInterval(d time.Duration) (restore func()) {
	old := flushInterval
	flushInterval = d
	return func() { flushInterval = old }
}

// ReceiveRaft hands n a raft message as its transport would, from the
// peer authenticated as from.
func (n *Node) ReceiveRaft(from uint64, m *pb.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	handler{n}.Receive(from, append([]byte{envRaft}, b...))
}
