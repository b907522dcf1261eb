package core

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/grovekit/grove"
)

// bbolt maps the whole file and trusts its meta pages; a file cut short
// makes it fault (SIGBUS/SIGSEGV, which no recover catches) while loading
// the free list. precheckFile reads the two meta pages itself first and
// refuses a file shorter than the page count they record.
//
// Meta page layout (bbolt's documented on-disk format): a 16-byte page
// header, then magic (4), version (4), page size (4), flags (4), root
// bucket (16), freelist page (8), page high-water mark (8), txid (8),
// checksum (8).
const (
	boltMagic       = 0xED0CDAED
	metaMagicOff    = 16
	metaPageSzOff   = 24
	metaFreelistOff = 48
	metaHighPgOff   = 56
	metaTxidOff     = 64
	metaHeaderSize  = 72
)

// freelistSynced reports whether the file's current meta page (the valid
// one with the higher transaction id) points at a free-list page.
func freelistSynced(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("core: data file %q: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	var buf [metaHeaderSize]byte
	if _, err := f.ReadAt(buf[:], 0); err != nil && err != io.EOF {
		return false, fmt.Errorf("core: data file %q: read meta page: %w", path, err)
	}
	pageSize := int64(binary.LittleEndian.Uint32(buf[metaPageSzOff:]))
	best, bestTxid, found := false, uint64(0), false
	for _, off := range []int64{0, pageSize} {
		if _, err := f.ReadAt(buf[:], off); err != nil && err != io.EOF {
			return false, fmt.Errorf("core: data file %q: read meta page: %w", path, err)
		}
		if binary.LittleEndian.Uint32(buf[metaMagicOff:]) != boltMagic {
			continue
		}
		if txid := binary.LittleEndian.Uint64(buf[metaTxidOff:]); !found || txid > bestTxid {
			best = binary.LittleEndian.Uint64(buf[metaFreelistOff:]) != ^uint64(0)
			bestTxid, found = txid, true
		}
	}
	return best, nil
}

func precheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("core: data file %q: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("core: data file %q: %w", path, err)
	}
	var high uint64
	found := false
	var pageSize uint32
	for _, off := range []int64{0, -1} {
		if off < 0 {
			if pageSize == 0 {
				pageSize = 4096
			}
			off = int64(pageSize)
		}
		var buf [metaHeaderSize]byte
		if _, err := f.ReadAt(buf[:], off); err != nil && err != io.EOF {
			return fmt.Errorf("core: data file %q: read meta page: %w", path, err)
		}
		if binary.LittleEndian.Uint32(buf[metaMagicOff:]) != boltMagic {
			continue
		}
		found = true
		if ps := binary.LittleEndian.Uint32(buf[metaPageSzOff:]); pageSize == 0 {
			pageSize = ps
		}
		high = max(high, binary.LittleEndian.Uint64(buf[metaHighPgOff:]))
	}
	if !found {
		return fmt.Errorf("core: data file %q is not a bbolt file (bad magic): %w", path, grove.ErrCorrupt)
	}
	if pageSize < 512 || pageSize > 1<<20 {
		return fmt.Errorf("core: data file %q has an impossible page size %d: %w", path, pageSize, grove.ErrCorrupt)
	}
	if need := high * uint64(pageSize); uint64(fi.Size()) < need {
		return fmt.Errorf("core: data file %q is truncated: %d bytes, its meta page needs %d: %w", path, fi.Size(), need, grove.ErrCorrupt)
	}
	return nil
}
