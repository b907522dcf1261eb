package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, payload := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{0xab}, 70000)} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, FrameMessage, payload); err != nil {
			t.Fatal(err)
		}
		appended, err := AppendFrame(nil, FrameMessage, payload)
		if err != nil || !bytes.Equal(appended, buf.Bytes()) {
			t.Fatalf("AppendFrame = %x, %v; WriteFrame wrote %x", appended, err, buf.Bytes())
		}
		f, err := ReadFrame(&buf, 1<<20)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		if f.Type != FrameMessage || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("got %v %d bytes, want message %d bytes", f.Type, len(f.Payload), len(payload))
		}
		if _, err := ReadFrame(&buf, 1<<20); !errors.Is(err, io.EOF) {
			t.Fatalf("ReadFrame at end = %v, want io.EOF", err)
		}
	}
}

// rawFrame builds a frame with every field under the test's control.
func rawFrame(length uint32, version, typ byte, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	return append(append(b, version, typ), payload...)
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"empty", nil, 64, io.EOF},
		{"partial length", []byte{0, 0}, 64, ErrTruncated},
		{"too large", rawFrame(65, ProtocolVersion, byte(FrameMessage), nil), 64, ErrFrameTooLarge},
		{"huge", []byte("GET / HTTP/1.1\r\n"), 0, ErrFrameTooLarge},
		{"length below header", rawFrame(1, ProtocolVersion, byte(FrameMessage), nil), 64, ErrTruncated},
		{"no type byte", rawFrame(2, ProtocolVersion, 0, nil)[:5], 64, ErrTruncated},
		{"bad version", rawFrame(2, 9, byte(FrameMessage), nil), 64, ErrBadVersion},
		{"unknown type", rawFrame(2, ProtocolVersion, 99, nil), 64, ErrUnknownFrame},
		{"zero type", rawFrame(2, ProtocolVersion, 0, nil), 64, ErrUnknownFrame},
		{"short payload", rawFrame(10, ProtocolVersion, byte(FrameMessage), []byte("abc")), 64, ErrTruncated},
		{"max frame", rawFrame(64, ProtocolVersion, byte(FrameMessage), make([]byte, 62)), 64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.input), tt.max)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ReadFrame = %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrTruncated) && len(tt.input) > 0 && !errors.Is(err, io.ErrUnexpectedEOF) &&
				tt.name != "length below header" {
				t.Fatalf("a mid-frame end should also wrap io.ErrUnexpectedEOF: %v", err)
			}
		})
	}
}

// FuzzReadFrame checks that no input panics the decoder, that every error is
// one of its sentinels, and that whatever decodes re-encodes to the input.
func FuzzReadFrame(f *testing.F) {
	f.Add(rawFrame(5, ProtocolVersion, byte(FrameMessage), []byte("abc")))
	f.Add(rawFrame(2, ProtocolVersion, byte(FrameHello), nil))
	f.Add(rawFrame(1<<31, ProtocolVersion, byte(FrameMessage), nil))
	f.Add(rawFrame(3, 0, 200, []byte{1}))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		fr, err := ReadFrame(r, 1<<16)
		if err != nil {
			for _, want := range []error{io.EOF, ErrTruncated, ErrFrameTooLarge, ErrBadVersion, ErrUnknownFrame} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("ReadFrame returned an untyped error: %v", err)
		}
		consumed := len(data) - r.Len()
		again, err := AppendFrame(nil, fr.Type, fr.Payload)
		if err != nil || !bytes.Equal(again, data[:consumed]) {
			t.Fatalf("re-encoding %v gives %x, input was %x", fr.Type, again, data[:consumed])
		}
	})
}

func BenchmarkFrameCodec(b *testing.B) {
	payload := bytes.Repeat([]byte{7}, 256)
	var buf []byte
	r := bytes.NewReader(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], FrameMessage, payload)
		r.Reset(buf)
		if _, err := ReadFrame(r, DefaultMaxFrameSize); err != nil {
			b.Fatal(err)
		}
	}
}
