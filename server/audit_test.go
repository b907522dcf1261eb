package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/grovekit/grove/internal/audit"
)

// TestAuditLog runs a server with --audit-log and makes a write and an ACL
// change on the ZooKeeper port (as a digest user), a write on the HTTP
// data API and a backup: each is one JSON line naming the operation, the
// path, the caller's identities and address, the port and the result. A
// read leaves no line.
func TestAuditLog(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "audit.jsonl")
	tc := startCluster(t, 1, func(c *Config) {
		c.AuditLog = logFile
		c.ZKAddr = freeAddr(t)
	})
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	s := tc.leader()
	conn, events, err := zk.Connect([]string{s.ZKAddr()}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for ev := range events {
		if ev.State == zk.StateHasSession {
			break
		}
	}
	if err := conn.AddAuth("digest", []byte("alice:pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create("/audited", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.SetACL("/audited", zk.DigestACL(zk.PermAll, "alice", "pw"), -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.Get("/audited"); err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, http.MethodPut, s, "/v1/znode/via-http", "y"); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, _ := httpGet(t, s, "/v1/backup"); code != 200 {
		t.Fatalf("backup: %d", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var recs []audit.Record
	for ctx.Err() == nil {
		recs = readAudit(t, logFile)
		if len(recs) >= 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []struct{ kind, op, path, port string }{
		{"write", "create", "/audited", "zookeeper"},
		{"acl", "setACL", "/audited", "zookeeper"},
		{"write", "create", "/via-http", "http"},
		{"backup", "backup", "", "http"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.Kind != w.kind || r.Op != w.op || r.Path != w.path || r.Port != w.port || r.Result != "ok" || r.Client == "" {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	if ids := strings.Join(recs[0].Identities, " "); !strings.Contains(ids, "digest:alice:") || !strings.Contains(ids, "ip:127.0.0.1") {
		t.Errorf("identities of the ZooKeeper write: %q", ids)
	}
}

func readAudit(t *testing.T, file string) []audit.Record {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}
