package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/grovekit/grove"
)

// grove lock runs its command with the fencing token in the environment,
// exits with the command's status, and releases the lock after.
func TestLockRunsCommand(t *testing.T) {
	cc := mustCluster(t)
	out, errs, code := cc.grove("lock", "/locks/a", "--", "sh", "-c", `echo "token=$GROVE_LOCK_TOKEN path=$GROVE_LOCK_PATH"; exit 3`)
	if code != 3 || errs != "" {
		t.Fatalf("lock -- sh: exit %d, stderr %q", code, errs)
	}
	token, ok := strings.CutPrefix(strings.TrimSpace(out), "token=")
	if !ok || !strings.HasSuffix(token, " path=/locks/a") {
		t.Fatalf("command output %q", out)
	}
	if n, err := strconv.ParseInt(strings.TrimSuffix(token, " path=/locks/a"), 10, 64); err != nil || n <= 0 {
		t.Fatalf("fencing token %q: %v", token, err)
	}
	if got := cc.ok("ls", "/locks/a"); got != "" {
		t.Fatalf("the lock's node outlived the command: %q", got)
	}
	if got := cc.fails(2, "lock", "relative"); !strings.Contains(got, "must start with /") {
		t.Fatalf("lock of a bad path: %q", got)
	}
}

// Commands run under one lock never overlap, and take their turns.
func TestLockExcludes(t *testing.T) {
	cc := mustCluster(t)
	journal := filepath.Join(t.TempDir(), "journal")
	script := fmt.Sprintf(`echo start >> %[1]s; sleep 0.1; echo end >> %[1]s`, journal)
	var wg sync.WaitGroup
	codes := make(chan int, 4)
	for range 4 {
		wg.Go(func() {
			_, _, code := cc.grove("lock", "/locks/b", "--", "sh", "-c", script)
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 0 {
			t.Fatalf("a locked command exited %d", code)
		}
	}
	b, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != strings.Repeat("start\nend\n", 4) {
		t.Fatalf("the commands overlapped:\n%s", got)
	}
}

// grove lock without a command holds the lock until interrupted; --try
// fails meanwhile instead of waiting.
func TestLockHoldAndTry(t *testing.T) {
	cc := mustCluster(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errs, done := cc.background(ctx, "lock", "/locks/c")
	waitFor(t, "the lock held", func() bool { return strings.HasPrefix(out.String(), "locked /locks/c, fencing token ") })
	if got := cc.fails(1, "lock", "--try", "/locks/c", "--", "true"); !strings.Contains(got, "lock /locks/c") {
		t.Fatalf("--try on a held lock: %q", got)
	}
	cancel()
	if code := waitExit(t, done); code != 0 || errs.String() != "" {
		t.Fatalf("interrupted lock: exit %d, stderr %q", code, errs.String())
	}
	if _, errOut, code := cc.grove("lock", "--try", "/locks/c", "--", "true"); code != 0 {
		t.Fatalf("--try on a free lock: exit %d, %q", code, errOut)
	}
}

// grove elect leads until interrupted and then hands over to the next
// candidate; grove elect --listen prints each leader.
func TestElect(t *testing.T) {
	cc := mustCluster(t)
	ctx := t.Context()
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	aliceCtx, stopAlice := context.WithCancel(ctx)
	defer stopAlice()
	bobCtx, stopBob := context.WithCancel(ctx)
	defer stopBob()

	alice, _, aliceDone := cc.background(aliceCtx, "elect", "/e", "alice")
	waitFor(t, "alice elected", func() bool { return strings.HasPrefix(alice.String(), "elected in /e as alice, term ") })
	heard, _, listenDone := cc.background(listenCtx, "elect", "--listen", "/e")
	waitFor(t, "the listener hearing alice", func() bool { return heard.String() == "alice\n" })
	bob, _, bobDone := cc.background(bobCtx, "elect", "/e", "bob")
	stopAlice()
	if code := waitExit(t, aliceDone); code != 0 {
		t.Fatalf("alice exited %d", code)
	}
	waitFor(t, "bob elected", func() bool { return strings.HasPrefix(bob.String(), "elected in /e as bob, term ") })
	waitFor(t, "the listener hearing bob", func() bool { return heard.String() == "alice\nbob\n" })
	stopBob()
	stopListen()
	for _, done := range []<-chan int{bobDone, listenDone} {
		if code := waitExit(t, done); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	if got := cc.fails(2, "elect", "/e"); !strings.Contains(got, "missing VALUE") {
		t.Fatalf("elect without a value: %q", got)
	}
}

// A walk that meets a znode it may not list names that znode.
func TestTreeNamesTheUnreadableZnode(t *testing.T) {
	cc := mustCluster(t)
	s := cc.c.Session()
	defer func() { _ = s.Close(context.Background()) }()
	ctx := t.Context()
	if _, err := s.Create(ctx, "/t", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	noRead := []grove.ACL{{Perms: grove.PermAll &^ grove.PermRead, Scheme: "world", ID: "anyone"}}
	if _, err := s.Create(ctx, "/t/secret", nil, grove.ModePersistent, noRead); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"tree", "/t"}, {"ls", "-R", "/t"}} {
		out, errs, code := cc.grove(args...)
		if code != 1 || !strings.Contains(errs, "list /t/secret: "+cliErr(grove.ErrNoAuth)) {
			t.Fatalf("grove %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// --output yaml prints each JSON document as a YAML one, same keys.
func TestOutputYAML(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/y", "hello")
	cc.ok("create", "/y/a")
	got := cc.ok("--output", "yaml", "get", "/y")
	for _, want := range []string{"---\n", "\ndata: hello\n", "\npath: /y\n", "  data_length: 5\n"} {
		if !strings.Contains("\n"+got, want) {
			t.Fatalf("get as YAML lacks %q:\n%s", want, got)
		}
	}
	if got := cc.ok("--output", "yaml", "ls", "/y"); got != "---\nchildren:\n- a\npath: /y\n" {
		t.Fatalf("ls as YAML:\n%s", got)
	}
	if got := cc.fails(2, "--output", "xml", "ls", "/"); !strings.Contains(got, "want text, json or yaml") {
		t.Fatalf("--output xml: %q", got)
	}
}

// grove txn applies the operations on standard input all or nothing.
func TestTxn(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/cfg", "v1")
	setStdin(t, "# move the config\ncheck /cfg 0\nset /cfg \"v2 with spaces\\n\" 0\ncreate -s /cfg-audit- moved\n\ncreate /cfg-new\ndelete /cfg-new\n")
	out := cc.ok("txn")
	if !strings.HasPrefix(out, "check /cfg\nset /cfg version 1\ncreate /cfg-audit-0000000") || !strings.HasSuffix(out, "\ncreate /cfg-new\ndelete /cfg-new\n") {
		t.Fatalf("txn printed %q", out)
	}
	if got := cc.ok("get", "/cfg"); got != "v2 with spaces\n" {
		t.Fatalf("after the txn: %q", got)
	}
	// A failing check applies nothing and names the operation.
	setStdin(t, "set /cfg v3\ncheck /cfg 0\n")
	if got := cc.fails(1, "txn"); got != "grove: txn: operation 2 (check /cfg) failed, nothing applied: "+cliErr(grove.ErrBadVersion) {
		t.Fatalf("failed txn: %q", got)
	}
	if got := cc.ok("get", "/cfg"); got != "v2 with spaces\n" {
		t.Fatalf("a failed txn changed /cfg: %q", got)
	}
	setStdin(t, "frobnicate /x\n")
	if got := cc.fails(2, "txn"); !strings.Contains(got, `line 1: unknown operation "frobnicate"`) {
		t.Fatalf("bad operation: %q", got)
	}
	setStdin(t, "set /cfg \"unterminated\n")
	if got := cc.fails(2, "txn"); !strings.Contains(got, "line 1: bad quoted string") {
		t.Fatalf("bad quoting: %q", got)
	}
	setStdin(t, "")
	if got := cc.fails(2, "txn"); !strings.Contains(got, "no operations") {
		t.Fatalf("empty txn: %q", got)
	}
}

// parseTxn never panics, and what it accepts has only valid paths.
func FuzzParseTxn(f *testing.F) {
	f.Add("check /a 0\ncreate -e -s /b \"x y\"\nset /a v 3\ndelete /a\n")
	f.Add("create\nset /a\n\"\n")
	f.Add("# c\n\n  delete   /a   -1  ")
	f.Fuzz(func(t *testing.T, in string) {
		ops, err := parseTxn(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, op := range ops {
			sequentialCreate := op.Type == grove.OpCreate && op.Mode.IsSequential()
			if grove.ValidatePath(op.Path) != nil && !sequentialCreate {
				t.Fatalf("accepted an invalid path %q", op.Path)
			}
		}
	})
}

// A write refused for its size says the size and the limit.
func TestTooLargeNamesSizeAndLimit(t *testing.T) {
	cc := mustCluster(t)
	setStdin(t, strings.Repeat("x", 2<<20))
	got := cc.fails(1, "create", "/big", "-")
	if !strings.Contains(got, "data of 2097152 bytes exceeds the 1048576 byte limit") {
		t.Fatalf("too large: %q", got)
	}
	cc.ok("create", "/small", "x") // the session's sequence has no gap
}

// stat decodes a TTL node's owner field into its TTL, as zkCli does not.
func TestStatShowsTTL(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "--ttl", "90m", "/leased")
	got := cc.ok("stat", "/leased")
	if !strings.Contains(got, "ephemeral_owner: 0x0\nttl: 1h30m0s\n") {
		t.Fatalf("stat of a TTL node:\n%s", got)
	}
	if got := cc.ok("--output", "json", "stat", "/leased"); !strings.Contains(got, `"ttl_ms":5400000`) {
		t.Fatalf("stat --output json of a TTL node: %s", got)
	}
}
