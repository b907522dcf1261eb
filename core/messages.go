package core

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/mpappend"
	"github.com/grovekit/grove/internal/mpguard"
)

// Peer messages are one envelope byte followed by the payload.
const (
	envRaft         byte = 1 // a marshalled raftpb.Message
	envTouch        byte = 2 // follower → leader: sessions heard from (touchMsg)
	envKeepAlive    byte = 3 // follower → leader: keep-alive needing an answer (keepAliveMsg)
	envKeepAliveAck byte = 4 // leader → follower: the answer (keepAliveAck)
)

type touchMsg struct {
	Sessions []uint64 `msgpack:"s"`
}

type keepAliveMsg struct {
	From    uint64 `msgpack:"f"`
	ReqID   uint64 `msgpack:"r"`
	Session uint64 `msgpack:"s"`
}

type keepAliveAck struct {
	ReqID       uint64     `msgpack:"r"`
	RemainingMs int64      `msgpack:"m"`
	Code        grove.Code `msgpack:"c"`
}

// decodeMsgpack decodes a peer's msgpack payload, refusing lying headers
// before the decoder can over-allocate.
func decodeMsgpack(b []byte, v any) error {
	if err := mpguard.Check(b); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}

func unmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("core: decode %T: %v: %w", m, err, grove.ErrCorrupt)
	}
	return nil
}

func envelope(kind byte, v any) ([]byte, error) {
	return mpappend.Append(append(make([]byte, 0, 128), kind), v)
}

// send hands raft's outbound messages to the transport; snapshots go
// through their own stream.
func (n *Node) send(msgs []*pb.Message) {
	for _, m := range msgs {
		if m.GetTo() == n.cfg.ID {
			continue
		}
		if m.GetType() == pb.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		if n.tr == nil {
			continue
		}
		if m.GetType() == pb.MsgHeartbeat && n.cfg.Observer != nil {
			n.heartbeatOut(m.GetTo())
		}
		n.transmit(m)
	}
}

// transmit encodes m and queues it for its peer (any goroutine).
func (n *Node) transmit(m *pb.Message) {
	// One allocation: the envelope byte, then the message encoded after it.
	buf := make([]byte, 1, 1+proto.Size(m))
	buf[0] = envRaft
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		n.log.Error("encode raft message", "err", err)
		return
	}
	n.tr.Send(m.GetTo(), b)
}

// heartbeatOut notes when a heartbeat went to peer, unless an earlier one
// is still unanswered; one unanswered for a heartbeat interval counts as
// lost (loop only).
func (n *Node) heartbeatOut(peer uint64) {
	if n.loopState.heartbeatSent == nil {
		n.loopState.heartbeatSent = map[uint64]time.Time{}
	}
	now := time.Now()
	lost := time.Duration(n.cfg.HeartbeatTicks) * n.cfg.TickInterval
	if sent, ok := n.loopState.heartbeatSent[peer]; !ok || now.Sub(sent) > lost {
		n.loopState.heartbeatSent[peer] = now
	}
}

// heartbeatBack reports the round trip of the heartbeat peer answered
// (loop only).
func (n *Node) heartbeatBack(peer uint64) {
	if sent, ok := n.loopState.heartbeatSent[peer]; ok {
		delete(n.loopState.heartbeatSent, peer)
		n.cfg.Observer.ObservePeerRTT(peer, time.Since(sent))
	}
}

// handler is the node's Transport handler.
type handler struct{ n *Node }

// Receive decodes one peer message from the authenticated peer from.
// Malformed messages, and messages that claim another sender or carry a
// type only this node may create, are logged, counted and dropped; they
// never stop the node.
func (h handler) Receive(from uint64, data []byte) {
	n := h.n
	if len(data) == 0 {
		return
	}
	body := data[1:]
	switch data[0] {
	case envRaft:
		m := &pb.Message{}
		if err := unmarshal(body, m); err != nil {
			n.log.Warn("dropped malformed raft message", "err", err)
			return
		}
		if err := n.checkSender(from, m); err != nil {
			n.stats.peerMessagesRefused.Add(1)
			n.log.Warn("dropped a raft message", "peer", from, "err", err)
			return
		}
		select {
		case n.recvc <- m:
		case <-n.donec:
		default:
			n.log.Debug("inbound queue full, dropped raft message", "type", m.GetType().String())
		}
	case envTouch:
		var t touchMsg
		if err := decodeMsgpack(body, &t); err != nil {
			n.log.Warn("dropped malformed touch message", "err", err)
			return
		}
		for _, id := range t.Sessions {
			n.sessions.touch(id, now())
		}
	case envKeepAlive:
		var ka keepAliveMsg
		if err := decodeMsgpack(body, &ka); err != nil {
			n.log.Warn("dropped malformed keep-alive", "err", err)
			return
		}
		if ka.From != from {
			n.stats.peerMessagesRefused.Add(1)
			n.log.Warn("dropped a keep-alive claiming another sender", "peer", from, "claimed", ka.From)
			return
		}
		n.answerKeepAlive(ka)
	case envKeepAliveAck:
		var ack keepAliveAck
		if err := decodeMsgpack(body, &ack); err != nil {
			n.log.Warn("dropped malformed keep-alive answer", "err", err)
			return
		}
		n.kaWaits.deliver(ack)
	default:
		n.log.Warn("dropped peer message of unknown kind", "kind", data[0])
	}
}

// ReceiveSnapshot stores a streamed snapshot and hands it to the loop.
func (h handler) ReceiveSnapshot(ctx context.Context, from uint64, header []byte, body io.Reader) error {
	return h.n.receiveSnapshot(ctx, from, header, body)
}

// ReportUnreachable tells raft a peer could not be reached.
func (h handler) ReportUnreachable(id uint64) {
	select {
	case h.n.recvc <- &pb.Message{Type: pb.MsgUnreachable.Enum(), From: new(id)}:
	default:
	}
}

// ReportPeerDown is told by the transport that a peer's process is gone
// (its connection ended and its address refuses connections). It never
// blocks. See Node.peerDown.
func (h handler) ReportPeerDown(id uint64) {
	select {
	case h.n.peerDownc <- id:
	default:
	}
}
