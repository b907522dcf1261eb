package mpguard

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestAcceptsWhatTheEncoderWrites(t *testing.T) {
	values := []any{
		nil, true, 1, -1, 300, -300, 1 << 40, 3.5, float32(1.5), "", "hello",
		string(make([]byte, 70000)), []byte{1, 2, 3}, make([]byte, 300),
		[]int{1, 2, 3}, make([]int, 20), map[string]any{"a": 1, "b": []any{"x", nil}},
		struct {
			A string
			B []uint64
			C map[string]int
		}{"x", []uint64{1, 1 << 63}, map[string]int{"k": 2}},
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b); err != nil {
			t.Errorf("%T %v: %v", v, b[:min(len(b), 16)], err)
		}
	}
}

func TestRejectsLyingHeaders(t *testing.T) {
	cases := map[string][]byte{
		"empty":                 nil,
		"array32 of 50M":        {0xdd, 0x02, 0xfa, 0xf0, 0x80, 0x01},
		"map32 of 1M":           {0xdf, 0x00, 0x10, 0x00, 0x00},
		"str32 of 1G":           {0xdb, 0x40, 0x00, 0x00, 0x00, 'a'},
		"bin16 short":           {0xc5, 0x01, 0x00, 1, 2},
		"fixstr short":          {0xa5, 'a', 'b'},
		"truncated length":      {0xdc, 0x01},
		"invalid byte":          {0xc1},
		"trailing bytes":        {0x01, 0x02},
		"ext32 short":           {0xc9, 0, 0, 0, 10, 1},
		"truncated fixarray":    {0x93, 1, 2},
		"deep nesting":          append(make([]byte, 0), deep(40)...),
		"array16 items too few": {0xdc, 0x00, 0x03, 0x01},
	}
	for name, b := range cases {
		if err := Check(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func deep(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0x91 // fixarray of one
	}
	return append(b, 0x01)
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{0x93, 1, 2, 3})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b) != nil {
			return
		}
		// Whatever Check accepts, the decoder handles without lying
		// headers: it decodes (or errors) and never over-allocates.
		var v any
		_ = msgpack.Unmarshal(b, &v)
	})
}
