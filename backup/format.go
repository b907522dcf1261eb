package backup

import (
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Errors a Reader returns (wrapped with details).
var (
	ErrNotBackup = errors.New("backup: not a Grove backup file")
	ErrVersion   = errors.New("backup: unsupported backup format version")
	ErrNeedKey   = errors.New("backup: the file is encrypted: give its key")
	ErrWrongKey  = errors.New("backup: wrong key (or the first encrypted chunk is damaged)")
	ErrCorrupt   = errors.New("backup: corrupt backup file")
)

const (
	magic = "GROVEBAK"
	// Version is the format version this package writes and reads.
	Version byte = 1

	flagGzip    byte = 1
	flagEncrypt byte = 2

	recNode byte = 1
	recEnd  byte = 2

	// maxHeader bounds the JSON header.
	maxHeader = 1 << 20
	// maxRecord bounds one record: a path (< 32 KiB) and a node record
	// (data up to the cluster's limit, far below this).
	maxRecord = 256 << 20
)

// Header describes a backup. It is stored in the clear (and covered by the
// checksum) so a file can be identified without its key.
type Header struct {
	Format    byte      `json:"format"`
	ClusterID string    `json:"cluster_id"`
	Index     uint64    `json:"index"`   // the applied index (zxid) of the state
	Members   int       `json:"members"` // voters and learners of the cluster
	Source    string    `json:"source"`  // raft ID (hex) of the node it was taken from
	Created   time.Time `json:"created"`
	Gzip      bool      `json:"gzip"`
	Encrypted bool      `json:"encrypted"`
	// Salt (16 random bytes) derives the file's own key from the user's;
	// NoncePrefix is the random prefix of every chunk's nonce. Encrypted
	// files only.
	Salt        []byte `json:"salt,omitempty"`
	NoncePrefix []byte `json:"nonce_prefix,omitempty"`
}

// Totals are counted while a backup is written and stored in its end
// record; a Reader checks them against what it read.
type Totals struct {
	Znodes     uint64 // znodes in the file
	DataBytes  uint64 // bytes of znode data
	Ephemerals uint64 // ephemerals left out
}

// Options choose how a Writer encodes the body.
type Options struct {
	Gzip bool
	Key  []byte // 32 bytes: encrypt with AES-256-GCM; nil: no encryption
}

// hashWriter hashes everything written through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

// Writer writes a backup file: NewWriter, Node for every znode in path
// order, then Close.
type Writer struct {
	out    *bufio.Writer
	hw     *hashWriter
	body   io.Writer
	zw     *gzip.Writer
	sealer *sealer
	bw     *bufio.Writer
	totals Totals
	buf    []byte
	closed bool
}

// NewWriter writes h's fields (with the format and encoding set from opts)
// and returns a Writer for the body.
func NewWriter(w io.Writer, h Header, opts Options) (*Writer, error) {
	h.Format, h.Gzip, h.Encrypted, h.Salt, h.NoncePrefix = Version, opts.Gzip, opts.Key != nil, nil, nil
	if h.Encrypted {
		h.Salt, h.NoncePrefix = make([]byte, 16), make([]byte, 4)
		_, _ = rand.Read(h.Salt)
		_, _ = rand.Read(h.NoncePrefix)
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	bw := &Writer{out: bufio.NewWriterSize(w, 256<<10)}
	bw.hw = &hashWriter{w: bw.out, h: sha256.New()}
	var flags byte
	if h.Gzip {
		flags |= flagGzip
	}
	if h.Encrypted {
		flags |= flagEncrypt
	}
	pre := append([]byte(magic), Version, flags)
	pre = binary.BigEndian.AppendUint32(pre, uint32(len(hdr))) // a small JSON document
	if _, err := bw.hw.Write(append(pre, hdr...)); err != nil {
		return nil, err
	}
	bw.body = bw.hw
	if h.Encrypted {
		if bw.sealer, err = newSealer(bw.body, opts.Key, h.Salt, h.NoncePrefix); err != nil {
			return nil, err
		}
		bw.body = bw.sealer
	}
	if h.Gzip {
		bw.zw, _ = gzip.NewWriterLevel(bw.body, gzip.BestSpeed)
		bw.body = bw.zw
	}
	bw.bw = bufio.NewWriterSize(bw.body, 64<<10)
	return bw, nil
}

func (bw *Writer) record(typ byte, payload ...[]byte) error {
	size := 0
	for _, p := range payload {
		size += len(p)
	}
	bw.buf = append(bw.buf[:0], typ)
	bw.buf = binary.AppendUvarint(bw.buf, uint64(size)) // a length
	if _, err := bw.bw.Write(bw.buf); err != nil {
		return err
	}
	for _, p := range payload {
		if _, err := bw.bw.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// Node writes one znode: its path and its stored record (package fsm's
// export format). dataLen counts toward the totals.
func (bw *Writer) Node(path string, rec []byte, dataLen int) error {
	var pl [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(pl[:], uint64(len(path)))
	if err := bw.record(recNode, pl[:n], []byte(path), rec); err != nil {
		return err
	}
	bw.totals.Znodes++
	bw.totals.DataBytes += uint64(dataLen) // a length
	return nil
}

// SkipEphemerals counts ephemerals left out of the file.
func (bw *Writer) SkipEphemerals(n int) { bw.totals.Ephemerals += uint64(n) } // a count

// Totals returns what was written so far.
func (bw *Writer) Totals() Totals { return bw.totals }

// Close writes the end record, finishes the body and writes the checksum.
// It does not close the underlying writer.
func (bw *Writer) Close() error {
	if bw.closed {
		return nil
	}
	bw.closed = true
	t := bw.totals
	var end []byte
	end = binary.AppendUvarint(end, t.Znodes)
	end = binary.AppendUvarint(end, t.DataBytes)
	end = binary.AppendUvarint(end, t.Ephemerals)
	if err := bw.record(recEnd, end); err != nil {
		return err
	}
	if err := bw.bw.Flush(); err != nil {
		return err
	}
	if bw.zw != nil {
		if err := bw.zw.Close(); err != nil {
			return err
		}
	}
	if bw.sealer != nil {
		if err := bw.sealer.Close(); err != nil {
			return err
		}
	}
	if _, err := bw.out.Write(bw.hw.h.Sum(nil)); err != nil {
		return err
	}
	return bw.out.Flush()
}

// hashReader hashes what is consumed through it and reads exactly what is
// asked for (it is an io.ByteReader, so a decompressor never reads ahead).
type hashReader struct {
	br *bufio.Reader
	h  hash.Hash
	n  int64
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.br.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	return n, err
}

func (hr *hashReader) ReadByte() (byte, error) {
	b, err := hr.br.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
		hr.n++
	}
	return b, err
}

// byteReader is what records are parsed from.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// Reader reads and verifies a backup file: NewReader, then Next until
// io.EOF, which it returns only once the whole file checked out.
type Reader struct {
	hdr    Header
	hr     *hashReader
	body   byteReader
	totals Totals
	seen   Totals
	buf    []byte
	done   bool
	err    error
}

// NewReader reads the file's header; key is needed for encrypted files.
func NewReader(r io.Reader, key []byte) (*Reader, error) {
	hr := &hashReader{br: bufio.NewReaderSize(r, 256<<10), h: sha256.New()}
	pre := make([]byte, len(magic)+6)
	if _, err := io.ReadFull(hr, pre); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d bytes", ErrNotBackup, hr.n)
		}
		return nil, err
	}
	if string(pre[:len(magic)]) != magic {
		return nil, ErrNotBackup
	}
	if v := pre[len(magic)]; v != Version {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrVersion, v, Version)
	}
	flags := pre[len(magic)+1]
	if flags&^(flagGzip|flagEncrypt) != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	size := binary.BigEndian.Uint32(pre[len(magic)+2:])
	if size > maxHeader {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrCorrupt, size)
	}
	raw := make([]byte, size)
	if _, err := io.ReadFull(hr, raw); err != nil {
		return nil, truncated(err)
	}
	rd := &Reader{hr: hr}
	if err := json.Unmarshal(raw, &rd.hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	h := rd.hdr
	if h.Format != Version || h.Gzip != (flags&flagGzip != 0) || h.Encrypted != (flags&flagEncrypt != 0) {
		return nil, fmt.Errorf("%w: header disagrees with the flags", ErrCorrupt)
	}
	rd.body = hr
	if h.Encrypted {
		if key == nil {
			return nil, ErrNeedKey
		}
		if len(h.NoncePrefix) != 4 || len(h.Salt) != 16 {
			return nil, fmt.Errorf("%w: salt of %d bytes, nonce prefix of %d", ErrCorrupt, len(h.Salt), len(h.NoncePrefix))
		}
		o, err := newOpener(hr, key, h.Salt, h.NoncePrefix)
		if err != nil {
			return nil, err
		}
		rd.body = o
	}
	if h.Gzip {
		zr, err := gzip.NewReader(rd.body)
		if err != nil {
			if errors.Is(err, ErrWrongKey) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		zr.Multistream(false)
		rd.body = bufio.NewReader(zr)
	}
	return rd, nil
}

// Header returns the file's header.
func (rd *Reader) Header() Header { return rd.hdr }

// Totals returns the totals of the end record, valid once Next returned
// io.EOF.
func (rd *Reader) Totals() Totals { return rd.totals }

// Read returns how many bytes of the file were consumed so far.
func (rd *Reader) Read() int64 { return rd.hr.n }

// Next returns the next znode's path and record (valid until the next
// call). After the last it verifies the end record, the end of the body and
// the checksum, and returns io.EOF.
func (rd *Reader) Next() (string, []byte, error) {
	if rd.err != nil {
		return "", nil, rd.err
	}
	path, rec, err := rd.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: truncated", ErrCorrupt)
			} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				err = fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
		}
		rd.err = err
	}
	return path, rec, err
}

func (rd *Reader) next() (string, []byte, error) {
	typ, err := rd.body.ReadByte()
	if err != nil {
		return "", nil, truncated(err)
	}
	size, err := binary.ReadUvarint(rd.body)
	if err != nil {
		return "", nil, truncated(err)
	}
	if size > maxRecord {
		return "", nil, fmt.Errorf("%w: record of %d bytes", ErrCorrupt, size)
	}
	if cap(rd.buf) < int(size) {
		rd.buf = make([]byte, size)
	}
	rd.buf = rd.buf[:size]
	if _, err := io.ReadFull(rd.body, rd.buf); err != nil {
		return "", nil, truncated(err)
	}
	switch typ {
	case recNode:
		plen, n := binary.Uvarint(rd.buf)
		if n <= 0 || plen > uint64(len(rd.buf)-n) {
			return "", nil, fmt.Errorf("%w: malformed node record", ErrCorrupt)
		}
		path := string(rd.buf[n : n+int(plen)])
		rec := rd.buf[n+int(plen):]
		rd.seen.Znodes++
		return path, rec, nil
	case recEnd:
		return "", nil, rd.finish()
	}
	return "", nil, fmt.Errorf("%w: unknown record type %d", ErrCorrupt, typ)
}

// finish checks the end record (in rd.buf), the end of the body and the
// checksum.
func (rd *Reader) finish() error {
	b := rd.buf
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("%w: malformed end record", ErrCorrupt)
		}
		vals[i], b = v, b[n:]
	}
	rd.totals = Totals{Znodes: vals[0], DataBytes: vals[1], Ephemerals: vals[2]}
	if rd.totals.Znodes != rd.seen.Znodes {
		return fmt.Errorf("%w: end record counts %d znodes, the file holds %d", ErrCorrupt, rd.totals.Znodes, rd.seen.Znodes)
	}
	if rd.body != byteReader(rd.hr) {
		if _, err := rd.body.ReadByte(); !errors.Is(err, io.EOF) {
			if err == nil {
				return fmt.Errorf("%w: data after the end record", ErrCorrupt)
			}
			return truncated(err)
		}
	}
	sum := rd.hr.h.Sum(nil)
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(rd.hr.br, want); err != nil {
		return fmt.Errorf("%w: checksum missing (truncated)", ErrCorrupt)
	}
	if string(sum) != string(want) {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if _, err := rd.hr.br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the checksum", ErrCorrupt)
	}
	rd.done = true
	return io.EOF
}
