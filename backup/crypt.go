package backup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// chunkSize is the plaintext size of one sealed chunk.
const chunkSize = 64 << 10

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// LoadKey reads a key file: 32 raw bytes, or 64 hex digits (surrounding
// white space ignored).
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backup: key file: %w", err)
	}
	if len(b) == KeySize {
		return b, nil
	}
	if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("backup: key file %s: want %d raw bytes or %d hex digits", path, KeySize, 2*KeySize)
}

// newAEAD returns AES-256-GCM under the file key derived from the user's
// key and the file's random salt (HKDF-SHA256): every file has its own key,
// so nonces never repeat under one key however many files share a user key.
func newAEAD(key, salt []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("backup: key of %d bytes, want %d", len(key), KeySize)
	}
	fileKey, err := hkdf.Key(sha256.New, key, salt, "grove backup v1", KeySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(fileKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// nonce returns the nonce of chunk i.
func nonce(prefix []byte, i uint64) []byte {
	n := make([]byte, 12)
	copy(n, prefix[:4])
	binary.BigEndian.PutUint64(n[4:], i)
	return n
}

// aad is the additional data of a chunk: whether it is the last.
func aad(last bool) []byte {
	if last {
		return []byte{1}
	}
	return []byte{0}
}

// sealer encrypts what is written to it in chunks:
// [1 last][4 length][sealed chunk].
type sealer struct {
	w      io.Writer
	aead   cipher.AEAD
	prefix []byte
	buf    []byte
	n      uint64
}

func newSealer(w io.Writer, key, salt, prefix []byte) (*sealer, error) {
	a, err := newAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	return &sealer{w: w, aead: a, prefix: prefix, buf: make([]byte, 0, chunkSize)}, nil
}

func (s *sealer) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		room := chunkSize - len(s.buf)
		if room == 0 {
			if err := s.flush(false); err != nil {
				return 0, err
			}
			continue
		}
		take := min(room, len(p))
		s.buf = append(s.buf, p[:take]...)
		p = p[take:]
	}
	return total, nil
}

func (s *sealer) flush(last bool) error {
	sealed := s.aead.Seal(nil, nonce(s.prefix, s.n), s.buf, aad(last))
	s.n++
	var hdr [5]byte
	hdr[0] = aad(last)[0]
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(sealed))) // at most chunkSize+16
	if _, err := s.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := s.w.Write(sealed)
	s.buf = s.buf[:0]
	return err
}

// Close seals the last chunk (possibly empty).
func (s *sealer) Close() error { return s.flush(true) }

// opener decrypts a sealer's output, reading exactly the chunks and no
// byte after the last.
type opener struct {
	r      io.Reader
	aead   cipher.AEAD
	prefix []byte
	plain  []byte
	n      uint64
	done   bool
}

func newOpener(r io.Reader, key, salt, prefix []byte) (*opener, error) {
	a, err := newAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	return &opener{r: r, aead: a, prefix: prefix}, nil
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.done {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// ReadByte lets a decompressor read exactly what it needs.
func (o *opener) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(o, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

func (o *opener) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(o.r, hdr[:]); err != nil {
		return truncated(err)
	}
	last := hdr[0] == 1
	if hdr[0] > 1 {
		return fmt.Errorf("%w: bad chunk flag %d", ErrCorrupt, hdr[0])
	}
	size := binary.BigEndian.Uint32(hdr[1:])
	if size < uint32(o.aead.Overhead()) || size > chunkSize+uint32(o.aead.Overhead()) {
		return fmt.Errorf("%w: chunk of %d bytes", ErrCorrupt, size)
	}
	sealed := make([]byte, size)
	if _, err := io.ReadFull(o.r, sealed); err != nil {
		return truncated(err)
	}
	plain, err := o.aead.Open(sealed[:0], nonce(o.prefix, o.n), sealed, aad(last))
	if err != nil {
		if o.n == 0 {
			return ErrWrongKey
		}
		return fmt.Errorf("%w: chunk %d does not authenticate", ErrCorrupt, o.n)
	}
	o.n++
	o.plain, o.done = plain, last
	return nil
}

// truncated turns an early end of input into ErrCorrupt.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	return err
}
