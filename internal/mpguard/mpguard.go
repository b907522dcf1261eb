// Package mpguard checks msgpack input before it reaches the decoder.
//
// vmihailenco/msgpack v5 allocates what a header declares: an array header
// claiming fifty million elements makes it allocate gigabytes from a few
// bytes of input, and an oversized string header grows a pooled buffer
// before the decoder notices the input is short. Check walks the encoding
// once, without allocating, and refuses any header that declares more
// elements or bytes than the input still holds, input nested deeper than
// MaxDepth, and truncated or trailing input.
package mpguard

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth is the deepest nesting of arrays and maps Check accepts.
const MaxDepth = 32

// ErrMalformed is returned for input that is not one well-formed msgpack
// value whose declared sizes fit the input.
var ErrMalformed = errors.New("mpguard: malformed msgpack")

// Check returns nil if b holds exactly one well-formed msgpack value whose
// every declared length fits in the bytes that follow it.
func Check(b []byte) error {
	rest, err := value(b, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return nil
}

func bad(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// size reads an n-byte big-endian length after the type byte.
func size(b []byte, n int) (uint64, []byte, error) {
	if len(b) < n {
		return 0, nil, bad("truncated length")
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(b[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(b))
	case 4:
		v = uint64(binary.BigEndian.Uint32(b))
	}
	return v, b[n:], nil
}

// skip drops n bytes of payload.
func skip(b []byte, n uint64) ([]byte, error) {
	if n > uint64(len(b)) {
		return nil, bad(fmt.Sprintf("declares %d bytes, %d left", n, len(b)))
	}
	return b[n:], nil
}

// value consumes one value and returns what follows it.
func value(b []byte, depth int) ([]byte, error) {
	if len(b) == 0 {
		return nil, bad("truncated value")
	}
	c, b := b[0], b[1:]
	switch {
	case c <= 0x7f || c >= 0xe0: // fixint
		return b, nil
	case c <= 0x8f: // fixmap
		return items(b, 2*uint64(c&0x0f), depth)
	case c <= 0x9f: // fixarray
		return items(b, uint64(c&0x0f), depth)
	case c <= 0xbf: // fixstr
		return skip(b, uint64(c&0x1f))
	}
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return b, nil
	case 0xcc, 0xd0:
		return skip(b, 1)
	case 0xcd, 0xd1:
		return skip(b, 2)
	case 0xca, 0xce, 0xd2:
		return skip(b, 4)
	case 0xcb, 0xcf, 0xd3:
		return skip(b, 8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+ type byte)
		return skip(b, 1+uint64(1)<<(c-0xd4))
	case 0xc4, 0xd9: // bin8, str8
		return sized(b, 1, 0)
	case 0xc5, 0xda:
		return sized(b, 2, 0)
	case 0xc6, 0xdb:
		return sized(b, 4, 0)
	case 0xc7: // ext8, ext16, ext32 (+ type byte)
		return sized(b, 1, 1)
	case 0xc8:
		return sized(b, 2, 1)
	case 0xc9:
		return sized(b, 4, 1)
	case 0xdc, 0xdd: // array16, array32
		n, rest, err := size(b, 2+2*int(c-0xdc))
		if err != nil {
			return nil, err
		}
		return items(rest, n, depth)
	case 0xde, 0xdf: // map16, map32
		n, rest, err := size(b, 2+2*int(c-0xde))
		if err != nil {
			return nil, err
		}
		return items(rest, 2*n, depth)
	}
	return nil, bad(fmt.Sprintf("invalid type byte 0x%02x", c))
}

func sized(b []byte, width int, extra uint64) ([]byte, error) {
	n, rest, err := size(b, width)
	if err != nil {
		return nil, err
	}
	return skip(rest, n+extra)
}

// items consumes n nested values; each takes at least one byte, so a count
// above the bytes left is refused before any of them is read.
func items(b []byte, n uint64, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return nil, bad("nested too deep")
	}
	if n > uint64(len(b)) {
		return nil, bad(fmt.Sprintf("declares %d elements, %d bytes left", n, len(b)))
	}
	var err error
	for range n {
		if b, err = value(b, depth+1); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Unmarshal checks b and then decodes it into v with msgpack.
func Unmarshal(b []byte, v any) error {
	if err := Check(b); err != nil {
		return err
	}
	return msgpack.Unmarshal(b, v)
}
