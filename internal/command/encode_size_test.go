package command

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/grovekit/grove"
)

// Encode and EncodeResult write into a buffer sized up front; the bytes
// must be exactly msgpack.Marshal's behind the header, whatever the hint.
func TestEncodeIsMsgpackBehindTheHeader(t *testing.T) {
	long := strings.Repeat("w", 3000)
	bodies := []any{
		&Request{Session: 7, Seq: 9, Op: OpCreate, Path: "/a/" + long, Data: []byte(long), ACL: grove.OpenACLUnsafe},
		&Request{Op: OpMulti, Ops: []grove.Op{grove.CreateOp("/x/"+long, []byte("d"), grove.ModePersistent, grove.OpenACLUnsafe), grove.DeleteOp("/y", -1)}},
		&CreateSession{TimeoutMs: 1000, Password: []byte("0123456789abcdef")},
		&Expire{Sessions: []uint64{1, 2, 3}},
	}
	for _, b := range bodies {
		got, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := msgpack.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[HeaderSize:], want) || got[0] != Version {
			t.Fatalf("%T: encoding differs from msgpack.Marshal", b)
		}
	}
	r := &Result{Path: "/p/" + long, Stat: &grove.Stat{Version: 3}, Multi: []OpResult{{Type: grove.OpCreate, Path: "/q/" + long}}}
	got, err := EncodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := msgpack.Marshal(r)
	if !bytes.Equal(got, want) {
		t.Fatal("EncodeResult differs from msgpack.Marshal")
	}
}
