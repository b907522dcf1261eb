// Package mpappend appends a value's msgpack encoding to a byte slice.
// msgpack.Marshal encodes into a fresh buffer that grows from nothing,
// and its callers then copy the result behind their own header; Append
// encodes straight after what dst holds, into dst's spare capacity, so a
// caller that sizes dst for the message pays one allocation (or none).
package mpappend

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"
)

// Append appends the msgpack encoding of v to dst and returns the
// extended slice. The bytes are exactly msgpack.Marshal(v)'s.
func Append(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
