package mpappend

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestAppendIsMarshalBehindDst(t *testing.T) {
	type msg struct {
		Path string `msgpack:"p"`
		Data []byte `msgpack:"d,omitempty"`
		N    int64  `msgpack:"n"`
	}
	for _, v := range []any{
		msg{Path: "/a", N: 7},
		&msg{Path: strings.Repeat("w", 5000), Data: []byte(strings.Repeat("d", 70000)), N: -1},
		map[string]int{"a": 1},
		nil,
	} {
		want, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, dst := range [][]byte{nil, {1, 2, 3}, make([]byte, 2, 4096)} {
			head := append([]byte(nil), dst...)
			got, err := Append(dst, v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(head)], head) || !bytes.Equal(got[len(head):], want) {
				t.Fatalf("%T after %d bytes: not msgpack.Marshal's encoding behind dst", v, len(head))
			}
		}
	}
	if _, err := Append(nil, make(chan int)); err == nil {
		t.Fatal("a value msgpack cannot encode was encoded")
	}
}
