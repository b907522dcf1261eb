package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/grovekit/grove"
)

// output writes a command's results: text, or with --output json one JSON
// document per command (watch: one per event), each on one line. It
// buffers; flush writes everything out and reports a failed write.
type output struct {
	w    *bufio.Writer
	json bool
	// terminal is set when the output is a terminal: data that does not
	// end in a newline gets one, so the prompt does not glue onto it (a
	// pipe or file gets the bytes as they are).
	terminal bool
	// stdout and stderr are the command's own streams, unbuffered: a
	// command grove lock runs writes to them, and progress goes to stderr.
	stdout, stderr io.Writer
}

// newOutput returns an output to w in format ("text" or "json").
func newOutput(w io.Writer, format string) *output {
	return &output{w: bufio.NewWriter(w), json: format == "json", terminal: isTerminal(w)}
}

// doc writes v as one line of JSON.
func (o *output) doc(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printf writes text; a failed write shows at flush.
func (o *output) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(o.w, format, args...)
}

// data writes a znode's data as it is, and a newline after it on a
// terminal if it has none; a failed write shows at flush.
func (o *output) data(b []byte) {
	_, _ = o.w.Write(b)
	if o.terminal && (len(b) == 0 || b[len(b)-1] != '\n') {
		_ = o.w.WriteByte('\n')
	}
}

// flush writes out what is buffered.
func (o *output) flush() error { return o.w.Flush() }

// jsonString returns s as a JSON string literal, for documents written
// piece by piece (ls, tree).
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// dataFields carries znode data in JSON: Data when the data is valid
// UTF-8, otherwise DataBase64 (standard base64 with padding). Exactly one
// of them is set.
type dataFields struct {
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"data_base64,omitempty"`
}

// encodeData returns the JSON fields of data.
func encodeData(data []byte) dataFields {
	if utf8.Valid(data) {
		s := string(data)
		return dataFields{Data: &s}
	}
	s := base64.StdEncoding.EncodeToString(data)
	return dataFields{DataBase64: &s}
}

// nodeDoc is the JSON document of create, get, set and stat: the path,
// and the data and Stat where the command has them.
type nodeDoc struct {
	Path string `json:"path"`
	dataFields
	Stat *statDoc `json:"stat,omitempty"`
}

// deleteDoc is the JSON document of delete.
type deleteDoc struct {
	Path    string `json:"path"`
	Deleted int    `json:"deleted"` // znodes deleted, the path's included
}

// eventDoc is the JSON document of one watch event.
type eventDoc struct {
	Type string `json:"type"` // NodeCreated, NodeDeleted, NodeDataChanged, NodeChildrenChanged
	Path string `json:"path"`
	Zxid int64  `json:"zxid"`
}

// statDoc is a grove.Stat in JSON, in the Stat's field order. Times are
// milliseconds since the Unix epoch.
type statDoc struct {
	Czxid          int64 `json:"czxid"`
	Mzxid          int64 `json:"mzxid"`
	Ctime          int64 `json:"ctime"`
	Mtime          int64 `json:"mtime"`
	Version        int32 `json:"version"`
	Cversion       int32 `json:"cversion"`
	Aversion       int32 `json:"aversion"`
	EphemeralOwner int64 `json:"ephemeral_owner"`
	DataLength     int32 `json:"data_length"`
	NumChildren    int32 `json:"num_children"`
	Pzxid          int64 `json:"pzxid"`
	// Container and TTLMs say what ZooKeeper's ephemeralOwner encodes for
	// containers and TTL nodes (which it shows clients as owner 0).
	Container bool  `json:"container,omitempty"`
	TTLMs     int64 `json:"ttl_ms,omitempty"`
}

// newStatDoc returns st as a statDoc.
func newStatDoc(st grove.Stat) *statDoc {
	return &statDoc{
		Czxid: st.Czxid, Mzxid: st.Mzxid, Ctime: st.Ctime, Mtime: st.Mtime,
		Version: st.Version, Cversion: st.Cversion, Aversion: st.Aversion,
		EphemeralOwner: st.SessionOwner(), DataLength: st.DataLength,
		NumChildren: st.NumChildren, Pzxid: st.Pzxid,
		Container: st.EphemeralOwner == grove.EphemeralOwnerContainer,
		TTLMs:     ttlOf(st),
	}
}

// ttlOf is a TTL node's TTL in milliseconds, 0 for every other znode.
func ttlOf(st grove.Stat) int64 {
	if st.EphemeralOwner != grove.EphemeralOwnerContainer && st.EphemeralOwner&grove.EphemeralOwnerTTLBit == grove.EphemeralOwnerTTLBit {
		return st.EphemeralOwner & grove.MaxTTL
	}
	return 0
}

// printStat writes st as text, one "name: value" line per field, with the
// JSON names: times in RFC 3339 (UTC, milliseconds), the ephemeral owner
// in hex as ZooKeeper shows it, everything else in decimal.
func (o *output) printStat(st grove.Stat) {
	ms := func(t int64) string {
		return time.UnixMilli(t).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	o.printf("czxid: %d\n", st.Czxid)
	o.printf("mzxid: %d\n", st.Mzxid)
	o.printf("ctime: %s\n", ms(st.Ctime))
	o.printf("mtime: %s\n", ms(st.Mtime))
	o.printf("version: %d\n", st.Version)
	o.printf("cversion: %d\n", st.Cversion)
	o.printf("aversion: %d\n", st.Aversion)
	o.printf("ephemeral_owner: 0x%x\n", uint64(st.SessionOwner())) // 0 for containers and TTL nodes, as zkCli shows
	if st.EphemeralOwner == grove.EphemeralOwnerContainer {
		o.printf("container: true\n")
	}
	if ttl := ttlOf(st); ttl > 0 {
		o.printf("ttl: %v\n", time.Duration(ttl)*time.Millisecond)
	}
	o.printf("data_length: %d\n", st.DataLength)
	o.printf("num_children: %d\n", st.NumChildren)
	o.printf("pzxid: %d\n", st.Pzxid)
}

// yamlWriter turns each line of JSON written to it into a YAML document
// ("---" and the document): --output yaml is --output json converted on
// the way out, so every command gets it with the same keys. A line is
// converted once its newline arrives.
type yamlWriter struct {
	w    io.Writer
	line []byte
}

func (y *yamlWriter) Write(p []byte) (int, error) {
	y.line = append(y.line, p...)
	for {
		i := bytes.IndexByte(y.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		doc, err := yaml.JSONToYAML(y.line[:i])
		if err != nil {
			return 0, fmt.Errorf("convert output to YAML: %w", err)
		}
		y.line = y.line[i+1:]
		if _, err := io.WriteString(y.w, "---\n"); err != nil {
			return 0, err
		}
		if _, err := y.w.Write(doc); err != nil {
			return 0, err
		}
	}
}
