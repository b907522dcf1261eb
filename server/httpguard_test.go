package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPGuard checks every refusal of the HTTP port's guard, and that
// the operator's requests (token, Grove header) pass.
func TestHTTPGuard(t *testing.T) {
	token := "0123456789abcdef-token"
	tc := startCluster(t, 1, func(c *Config) { c.HTTPToken = []byte(token) })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	s := tc.leader()
	do := func(method, path string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+s.HTTPAddr()+path, strings.NewReader("x"))
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	auth := "Bearer " + token
	tool := map[string]string{"Authorization": auth, GroveRequestHeader: "1"}
	for _, tt := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"health is open", "GET", "/healthz", nil, 200},
		{"readiness is open", "GET", "/readyz", nil, 200},
		{"metrics open by default", "GET", "/metrics", nil, 200},
		{"status needs the token", "GET", "/status", nil, 401},
		{"wrong token", "GET", "/status", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"backup needs the token", "GET", "/v1/backup", nil, 401},
		{"data needs the token", "GET", "/v1/znode/", nil, 401},
		{"members need the token", "GET", "/members", nil, 401},
		{"remove needs the token", "POST", "/members/remove?name=n1", map[string]string{GroveRequestHeader: "1"}, 401},
		{"status with the token", "GET", "/status", map[string]string{"Authorization": auth}, 200},
		{"write with the token", "PUT", "/v1/znode/guarded", map[string]string{"Authorization": auth}, 200},
		{"plain POST (a web form)", "POST", "/members/remove?name=nobody", map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, 403},
		{"cross-origin write", "PUT", "/v1/znode/x", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, 403},
		{"rebound host name", "GET", "/status", map[string]string{"Authorization": auth, "Host": "evil.example:8080"}, 403},
		{"tool POST passes the guard", "POST", "/members/remove?name=nobody", tool, 404},
	} {
		if got := do(tt.method, tt.path, tt.hdr); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
	}
}

// TestStalledBackupIsCut starts a backup download and stops reading: the
// server cuts the stream (the client sees it end short) instead of holding
// its read transaction forever.
func TestStalledBackupIsCut(t *testing.T) {
	tc := startCluster(t, 1, func(c *Config) { c.BackupStallTimeout = 200 * time.Millisecond })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	s := tc.leader()
	big := bytes.Repeat([]byte("v"), 500<<10)
	for i := range 40 { // 20 MB: far more than the socket buffers hold
		if code, body := httpDo(t, "PUT", s, fmt.Sprintf("/v1/znode/big-%d", i), string(big)); code != 200 {
			t.Fatalf("put: %d %s", code, body)
		}
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != 200 {
		t.Fatalf("backup: %s", resp.Status)
	}
	// The client reads nothing until the server has given up on it.
	waitFor(t, "the server to cut the stalled stream", func() bool { return s.backupsFailed.Load() > 0 })
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("the stalled backup was not cut: %d bytes read to a clean end", n)
	}
	t.Logf("stalled stream cut after %d bytes: %v", n, err)
}

// TestCmdlineRedactsSecrets checks the profiler's command line hides the
// values of secret flags in every spelling.
func TestCmdlineRedactsSecrets(t *testing.T) {
	got := redactArgs([]string{"grove", "server", "--gossip-key", "AAAA", "-super-digest=super:xyz", "--name", "n1", "--super-digest", "super:abc", "--gossip-key=BBBB"})
	want := []string{"grove", "server", "--gossip-key", "<redacted>", "-super-digest=<redacted>", "--name", "n1", "--super-digest", "<redacted>", "--gossip-key=<redacted>"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q", got)
	}
}

// TestBackupToken checks the backup role: with a backup token set, only
// it opens /v1/backup; the admin token does not, and the backup token
// opens nothing else.
func TestBackupToken(t *testing.T) {
	admin, backupTok := "admin-token-0123456789", "backup-token-0123456789"
	tc := startCluster(t, 1, func(c *Config) { c.HTTPToken, c.BackupToken = []byte(admin), []byte(backupTok) })
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	s := tc.leader()
	waitFor(t, "something applied", func() bool { return s.node.Status().Applied > 0 })
	get := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/v1/backup", backupTok, 200},
		{"/v1/backup", admin, 401},
		{"/status", backupTok, 401},
		{"/status", admin, 200},
	} {
		if got := get(tt.path, tt.token); got != tt.want {
			t.Errorf("GET %s with the %s token: %d, want %d", tt.path, map[string]string{admin: "admin", backupTok: "backup"}[tt.token], got, tt.want)
		}
	}
}
