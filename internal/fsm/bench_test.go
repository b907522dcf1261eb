package fsm

import (
	"fmt"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/internal/command"
)

// benchApply applies entries, committing one bbolt transaction per 64, and
// reports allocations. The entries are encoded before the timer starts.
func benchApply(b *testing.B, h *harness, entries [][]byte) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	var tx *bbolt.Tx
	var err error
	for i, data := range entries {
		if i%64 == 0 {
			if tx != nil {
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			if tx, err = h.db.Begin(true); err != nil {
				b.Fatal(err)
			}
		}
		h.index++
		out, err := Apply(Bolt(tx), h.index, 1, data)
		if err != nil || out.Result.Code != 0 {
			b.Fatalf("apply: %v %+v", err, out)
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// encodeRequests returns n encoded requests of session c built by mk.
func encodeRequests(b *testing.B, c *client, n int, mk func(i int) *command.Request) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		req := mk(i)
		c.seq++
		req.Session, req.Seq = c.id, c.seq
		data, err := command.Encode(req)
		if err != nil {
			b.Fatal(err)
		}
		command.Stamp(data, int64(i))
		out[i] = data
	}
	return out
}

func BenchmarkApplyCreate(b *testing.B) {
	h := mustHarness(b)
	c := h.newClient()
	c.mustCreate("/bench", grove.ModePersistent)
	payload := make([]byte, 64)
	entries := encodeRequests(b, c, b.N, func(i int) *command.Request {
		return &command.Request{Op: command.OpCreate, Path: fmt.Sprintf("/bench/n%09d", i), Data: payload, ACL: grove.OpenACLUnsafe}
	})
	benchApply(b, h, entries)
}

func BenchmarkApplySet(b *testing.B) {
	h := mustHarness(b)
	c := h.newClient()
	c.mustCreate("/bench", grove.ModePersistent)
	payload := make([]byte, 64)
	entries := encodeRequests(b, c, b.N, func(int) *command.Request {
		return &command.Request{Op: command.OpSetData, Path: "/bench", Data: payload, Version: -1}
	})
	benchApply(b, h, entries)
}

func BenchmarkGet(b *testing.B) {
	h := mustHarness(b)
	c := h.newClient()
	if r := c.create("/bench", string(make([]byte, 64)), grove.ModePersistent, grove.OpenACLUnsafe); r.Code != 0 {
		b.Fatal(r.Code)
	}
	tx, err := h.db.Begin(false)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Get(Bolt(tx), "/bench", nil); err != nil {
			b.Fatal(err)
		}
	}
}
