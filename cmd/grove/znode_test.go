package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grovekit/grove"
)

// jsonDoc is every field a znode command's JSON document may have;
// decoding with DisallowUnknownFields checks that no other appears.
type jsonDoc struct {
	Path        string    `json:"path"`
	Data        *string   `json:"data"`
	DataBase64  *string   `json:"data_base64"`
	Stat        *statDoc  `json:"stat"`
	Children    *[]string `json:"children"`
	Descendants *[]string `json:"descendants"`
	Deleted     *int      `json:"deleted"`
}

// mustJSON runs grove --output json args, checks that it printed exactly
// one line holding one JSON document of known fields, and decodes it.
func (cc *cliCluster) mustJSON(args ...string) jsonDoc {
	cc.t.Helper()
	out := cc.ok(append([]string{"--output", "json"}, args...)...)
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		cc.t.Fatalf("grove %q: want one line of JSON, got %q", args, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var d jsonDoc
	if err := dec.Decode(&d); err != nil {
		cc.t.Fatalf("grove %q: %v in %q", args, err, out)
	}
	return d
}

func TestZnodeCommandsText(t *testing.T) {
	cc := mustCluster(t)
	if got := cc.ok("create", "/app", "v1"); got != "/app\n" {
		t.Fatalf("create printed %q", got)
	}
	if got := cc.ok("get", "/app"); got != "v1" {
		t.Fatalf("get printed %q, want the data alone", got)
	}
	if got := cc.ok("set", "/app", "v2"); got != "" {
		t.Fatalf("set printed %q", got)
	}
	if got := cc.ok("get", "/app"); got != "v2" {
		t.Fatalf("get after set printed %q", got)
	}
	cc.ok("create", "/app/b")
	cc.ok("create", "/app/a", "")
	if got := cc.ok("ls", "/app"); got != "a\nb\n" {
		t.Fatalf("ls printed %q", got)
	}
	if got := cc.ok("ls", "/app/a"); got != "" {
		t.Fatalf("ls of a leaf printed %q", got)
	}

	lines := strings.Split(strings.TrimSuffix(cc.ok("stat", "/app"), "\n"), "\n")
	var names []string
	fields := map[string]string{}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("stat line %q is not name: value", l)
		}
		names = append(names, name)
		fields[name] = value
	}
	want := []string{"czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeral_owner", "data_length", "num_children", "pzxid"}
	if !slices.Equal(names, want) {
		t.Fatalf("stat fields %q, want %q", names, want)
	}
	if fields["version"] != "1" || fields["num_children"] != "2" || fields["data_length"] != "2" || fields["ephemeral_owner"] != "0x0" {
		t.Fatalf("stat: %v", fields)
	}
	if _, err := time.Parse(time.RFC3339, fields["mtime"]); err != nil {
		t.Fatalf("stat mtime: %v", err)
	}

	if got := cc.ok("delete", "/app/a"); got != "" {
		t.Fatalf("delete printed %q", got)
	}
	if got := cc.ok("ls", "/app"); got != "b\n" {
		t.Fatalf("ls after delete printed %q", got)
	}
	noNode := cliErr(grove.ErrNoNode)
	for _, cmd := range []string{"get", "stat", "ls", "tree", "delete"} {
		if got, want := cc.fails(1, cmd, "/app/a"), "grove: "+cmd+" /app/a: "+noNode; got != want {
			t.Fatalf("%s of a missing node: %q, want %q", cmd, got, want)
		}
	}
	cc.fails(1, "ls", "-R", "/app/a")
	cc.fails(1, "set", "/app/a", "x")
	if got := cc.fails(1, "create", "/app", "again"); !strings.Contains(got, cliErr(grove.ErrNodeExists)) {
		t.Fatalf("create of an existing node: %q", got)
	}
	if got := cc.fails(1, "create", "/none/x"); !strings.Contains(got, noNode) {
		t.Fatalf("create without a parent: %q", got)
	}
}

func TestZnodeCommandsJSON(t *testing.T) {
	cc := mustCluster(t)
	if d := cc.mustJSON("create", "/cfg", "hello"); d.Path != "/cfg" || d.Data != nil || d.Stat != nil {
		t.Fatalf("create: %+v", d)
	}
	d := cc.mustJSON("get", "/cfg")
	if d.Path != "/cfg" || d.Data == nil || *d.Data != "hello" || d.DataBase64 != nil || d.Stat == nil || d.Stat.Version != 0 || d.Stat.DataLength != 5 {
		t.Fatalf("get: %+v", d)
	}

	d = cc.mustJSON("set", "/cfg", "<b>&</b>")
	if d.Path != "/cfg" || d.Stat == nil || d.Stat.Version != 1 || d.Data != nil {
		t.Fatalf("set: %+v", d)
	}
	out := cc.ok("--output", "json", "get", "/cfg")
	if !strings.Contains(out, `"data":"<b>&</b>"`) {
		t.Fatalf("get: data is escaped: %s", out)
	}

	binary := "\xff\x00\x01 not utf-8"
	setStdin(t, binary)
	cc.ok("create", "/bin", "-")
	d = cc.mustJSON("get", "/bin")
	if d.Data != nil || d.DataBase64 == nil || *d.DataBase64 != base64.StdEncoding.EncodeToString([]byte(binary)) {
		t.Fatalf("get of binary data: %+v", d)
	}
	if got := cc.ok("get", "/bin"); got != binary {
		t.Fatalf("get of binary data as text: %q", got)
	}
	cc.ok("create", "/empty")
	if d = cc.mustJSON("get", "/empty"); d.Data == nil || *d.Data != "" || d.DataBase64 != nil {
		t.Fatalf("get of empty data: %+v", d)
	}

	d = cc.mustJSON("stat", "/cfg")
	if d.Path != "/cfg" || d.Stat == nil || d.Stat.Version != 1 || d.Stat.Mtime < d.Stat.Ctime || d.Stat.Czxid == 0 || d.Data != nil {
		t.Fatalf("stat: %+v", d)
	}

	cc.ok("create", "/cfg/x")
	cc.ok("create", "/cfg/x/y")
	if d = cc.mustJSON("ls", "/cfg"); d.Children == nil || !slices.Equal(*d.Children, []string{"x"}) || d.Descendants != nil {
		t.Fatalf("ls: %+v", d)
	}
	if d = cc.mustJSON("ls", "/cfg/x/y"); d.Children == nil || len(*d.Children) != 0 {
		t.Fatalf("ls of a leaf: %+v", d)
	}
	if d = cc.mustJSON("ls", "-R", "/cfg"); d.Descendants == nil || !slices.Equal(*d.Descendants, []string{"/cfg/x", "/cfg/x/y"}) || d.Children != nil {
		t.Fatalf("ls -R: %+v", d)
	}
	if d = cc.mustJSON("delete", "--recursive", "/cfg"); d.Path != "/cfg" || d.Deleted == nil || *d.Deleted != 3 {
		t.Fatalf("delete: %+v", d)
	}
	if d = cc.mustJSON("delete", "/empty"); d.Deleted == nil || *d.Deleted != 1 {
		t.Fatalf("delete: %+v", d)
	}
	// Errors stay one text line on stderr.
	var outb, errb bytes.Buffer
	if code := run([]string{"--servers", cc.servers, "--output", "json", "get", "/cfg"}, &outb, &errb); code != 1 || outb.Len() != 0 {
		t.Fatalf("json get of a missing node: exit %d, stdout %q", code, outb.String())
	}
	mustOneErrorLine(t, errb.String())
}

func TestDataSources(t *testing.T) {
	cc := mustCluster(t)
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cc.ok("create", "/f", "@"+file)
	if got := cc.ok("get", "/f"); got != "from a file\n" {
		t.Fatalf("data from @file: %q", got)
	}
	setStdin(t, "from stdin")
	cc.ok("set", "/f", "-")
	if got := cc.ok("get", "/f"); got != "from stdin" {
		t.Fatalf("data from stdin: %q", got)
	}
	cc.ok("set", "/f", "--", "-literal")
	if got := cc.ok("get", "/f"); got != "-literal" {
		t.Fatalf("data after --: %q", got)
	}
	if got := cc.fails(1, "set", "/f", "@"+file+".missing"); !strings.Contains(got, "no such file") {
		t.Fatalf("missing @file: %q", got)
	}
	cc.fails(1, "create", "/g", "@"+file+".missing")
	if got := cc.ok("get", "/f"); got != "-literal" {
		t.Fatalf("a failed set changed the data: %q", got)
	}
}

func TestCreateModes(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/q")
	if got := cc.ok("create", "--sequential", "/q/item-", "a"); got != "/q/item-0000000000\n" {
		t.Fatalf("sequential create printed %q", got)
	}
	if got := cc.ok("create", "/q/item-", "b", "-s"); got != "/q/item-0000000001\n" {
		t.Fatalf("second sequential create printed %q", got)
	}

	// An ephemeral znode lives as long as the command's session: it is
	// created, and gone once the command has exited.
	if got := cc.ok("create", "--ephemeral", "/eph"); got != "/eph\n" {
		t.Fatalf("ephemeral create printed %q", got)
	}
	cc.fails(1, "get", "/eph")
	got := cc.ok("create", "-e", "-s", "/q/e-")
	if !regexp.MustCompile(`^/q/e-\d{10}\n$`).MatchString(got) {
		t.Fatalf("ephemeral sequential create printed %q", got)
	}
	cc.fails(1, "get", strings.TrimSpace(got))

	cc.ok("create", "--container", "/box")
	// As zkCli shows it: no owner, and what the node is said apart.
	if d := cc.mustJSON("stat", "/box"); d.Stat.EphemeralOwner != 0 || !d.Stat.Container {
		t.Fatalf("container: ephemeral owner %#x, container %v", d.Stat.EphemeralOwner, d.Stat.Container)
	}
	if got := cc.ok("stat", "/box"); !strings.Contains(got, "ephemeral_owner: 0x0\ncontainer: true\n") {
		t.Fatalf("container stat:\n%s", got)
	}

	cc.ok("create", "--ttl", "1h", "/ttl", "x")
	mustTTL(t, cc.mustJSON("stat", "/ttl").Stat, time.Hour)
	got = cc.ok("create", "--ttl=90s", "--sequential", "/q/t-")
	if !regexp.MustCompile(`^/q/t-\d{10}\n$`).MatchString(got) {
		t.Fatalf("TTL sequential create printed %q", got)
	}
	mustTTL(t, cc.mustJSON("stat", strings.TrimSpace(got)).Stat, 90*time.Second)
}

// mustTTL fails the test unless st is a TTL node's with ttl.
func mustTTL(t *testing.T, st *statDoc, ttl time.Duration) {
	t.Helper()
	if st.EphemeralOwner != 0 || st.TTLMs != ttl.Milliseconds() {
		t.Fatalf("TTL node: ephemeral owner %#x, ttl %d ms, want 0 and %d ms", uint64(st.EphemeralOwner), st.TTLMs, ttl.Milliseconds())
	}
}

func TestSetAndDeleteVersions(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/v", "a")
	cc.ok("set", "--version", "0", "/v", "b")
	badVersion := "grove: set /v: " + cliErr(grove.ErrBadVersion)
	if got := cc.fails(1, "set", "/v", "c", "--version", "0"); got != badVersion {
		t.Fatalf("set with a stale version: %q, want %q", got, badVersion)
	}
	if got := cc.ok("get", "/v"); got != "b" {
		t.Fatalf("a refused set changed the data to %q", got)
	}
	cc.ok("set", "/v", "c", "--version", "1") // flags after the arguments
	cc.ok("set", "/v", "d", "--version=-1")
	if d := cc.mustJSON("set", "/v", "e"); d.Stat.Version != 4 {
		t.Fatalf("version after four sets: %d", d.Stat.Version)
	}
	if got := cc.fails(1, "delete", "--version", "3", "/v"); got != "grove: delete /v: "+cliErr(grove.ErrBadVersion) {
		t.Fatalf("delete with a stale version: %q", got)
	}
	cc.ok("delete", "/v", "--version", "4")
	cc.fails(1, "get", "/v")
}

func TestDeleteRecursive(t *testing.T) {
	cc := mustCluster(t)
	for _, p := range []string{"/d", "/d/a", "/d/a/x", "/d/a/x/deep", "/d/b", "/keep"} {
		cc.ok("create", p)
	}
	if got := cc.fails(1, "delete", "/d"); got != "grove: delete /d: "+cliErr(grove.ErrNotEmpty) {
		t.Fatalf("delete of a non-empty node: %q", got)
	}
	if got := cc.ok("ls", "-R", "/d"); got != "/d/a\n/d/a/x\n/d/a/x/deep\n/d/b\n" {
		t.Fatalf("a refused delete changed the tree: %q", got)
	}
	if got := cc.ok("delete", "--recursive", "/d/a"); got != "" {
		t.Fatalf("delete --recursive printed %q", got)
	}
	if got := cc.ok("ls", "/d"); got != "b\n" {
		t.Fatalf("after delete --recursive /d/a: %q", got)
	}
	if d := cc.mustJSON("delete", "-r", "/d"); *d.Deleted != 2 {
		t.Fatalf("delete -r /d deleted %d", *d.Deleted)
	}
	if got := cc.ok("ls", "/"); strings.Contains(got, "d\n") || !strings.Contains(got, "keep\n") {
		t.Fatalf("ls / after the deletes: %q", got)
	}
	cc.fails(1, "delete", "-r", "/d")
}

func TestLsPagesThroughBigDirectories(t *testing.T) {
	cc := mustCluster(t)
	const n = 2*pageSize + 500
	s := cc.c.Session()
	defer func() { _ = s.Close(context.Background()) }()
	ctx := t.Context()
	if _, err := s.Create(ctx, "/big", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < n; i += 250 {
		var ops []grove.Op
		for j := i; j < min(i+250, n); j++ {
			name := fmt.Sprintf("c%05d", j)
			want = append(want, name)
			ops = append(ops, grove.CreateOp("/big/"+name, nil, grove.ModePersistent, grove.OpenACLUnsafe))
		}
		if _, err := s.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Split(strings.TrimSuffix(cc.ok("ls", "/big"), "\n"), "\n"); !slices.Equal(got, want) {
		t.Fatalf("ls listed %d names, want %d in order", len(got), len(want))
	}
	if d := cc.mustJSON("ls", "/big"); !slices.Equal(*d.Children, want) {
		t.Fatalf("json ls listed %d names, want %d in order", len(*d.Children), len(want))
	}
	got := strings.Split(strings.TrimSuffix(cc.ok("ls", "-R", "/big"), "\n"), "\n")
	if len(got) != n || got[0] != "/big/"+want[0] || got[n-1] != "/big/"+want[n-1] || !slices.IsSorted(got) {
		t.Fatalf("ls -R listed %d paths", len(got))
	}
	if tree := cc.ok("tree", "/big"); strings.Count(tree, "\n") != n+1 || !strings.HasSuffix(tree, "└── "+want[n-1]+"\n") {
		t.Fatalf("tree of the big directory: %d lines", strings.Count(tree, "\n"))
	}
}

func TestTreeAndRecursiveLs(t *testing.T) {
	cc := mustCluster(t)
	for _, p := range []string{"/t", "/t/a", "/t/a/x", "/t/a/x/1", "/t/a/y", "/t/a-b", "/t/b", "/t/b/z"} {
		cc.ok("create", p)
	}
	wantTree := `/t
├── a
│   ├── x
│   │   └── 1
│   └── y
├── a-b
└── b
    └── z
`
	if got := cc.ok("tree", "/t"); got != wantTree {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, wantTree)
	}
	if got := cc.ok("tree", "/t/a-b"); got != "/t/a-b\n" {
		t.Fatalf("tree of a leaf: %q", got)
	}
	wantJSON := `{"path":"/t","children":[` +
		`{"path":"/t/a","children":[{"path":"/t/a/x","children":[{"path":"/t/a/x/1","children":[]}]},{"path":"/t/a/y","children":[]}]},` +
		`{"path":"/t/a-b","children":[]},` +
		`{"path":"/t/b","children":[{"path":"/t/b/z","children":[]}]}]}` + "\n"
	if got := cc.ok("--output", "json", "tree", "/t"); got != wantJSON {
		t.Fatalf("json tree:\n%s\nwant:\n%s", got, wantJSON)
	}
	var v any
	if err := json.Unmarshal([]byte(wantJSON), &v); err != nil {
		t.Fatal(err)
	}
	// Each node right after its parent, siblings in byte order.
	wantLs := "/t/a\n/t/a/x\n/t/a/x/1\n/t/a/y\n/t/a-b\n/t/b\n/t/b/z\n"
	if got := cc.ok("ls", "-R", "/t"); got != wantLs {
		t.Fatalf("ls -R:\n%s\nwant:\n%s", got, wantLs)
	}
	if got := cc.ok("ls", "--recursive", "/t/a-b"); got != "" {
		t.Fatalf("ls -R of a leaf: %q", got)
	}
	if got := cc.ok("ls", "-R", "/"); !strings.Contains(got, "/t\n"+wantLs) {
		t.Fatalf("ls -R /:\n%s", got)
	}
}

func TestWatchText(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/w")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errs, done := cc.background(ctx, "watch", "--recursive", "/w")
	waitWatching(t, cc, out, "NodeDataChanged /w\n")

	cc.ok("create", "/w/a", "1")
	cc.ok("set", "/w/a", "2")
	cc.ok("delete", "/w/a")
	want := "NodeCreated /w/a\nNodeDataChanged /w/a\nNodeDeleted /w/a\n"
	waitFor(t, "the events", func() bool { return strings.HasSuffix(out.String(), want) })
	cancel()
	if code := waitExit(t, done); code != 0 || errs.String() != "" {
		t.Fatalf("interrupted watch: exit %d, stderr %q", code, errs.String())
	}

	// Without --recursive: the node and its children list.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	out, errs, done = cc.background(ctx2, "watch", "/w")
	waitWatching(t, cc, out, "NodeDataChanged /w\n")
	cc.ok("create", "/w/b")
	cc.ok("create", "/w/b/deep") // not watched
	cc.ok("delete", "/w/b/deep")
	cc.ok("delete", "-r", "/w")
	want = "NodeChildrenChanged /w\nNodeChildrenChanged /w\nNodeDeleted /w\n"
	waitFor(t, "the events", func() bool { return strings.HasSuffix(out.String(), want) })
	cancel2()
	if code := waitExit(t, done); code != 0 || errs.String() != "" {
		t.Fatalf("interrupted watch: exit %d, stderr %q", code, errs.String())
	}
}

// waitWatching sets /w until the watch writing to out reports it as
// ready (there is no other sign that the watch is set).
func waitWatching(t *testing.T, cc *cliCluster, out *syncBuffer, ready string) {
	t.Helper()
	waitFor(t, "the watch", func() bool {
		cc.ok("set", "/w", "ping")
		return strings.Contains(out.String(), ready)
	})
}

func TestWatchJSON(t *testing.T) {
	cc := mustCluster(t)
	cc.ok("create", "/w")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errs, done := cc.background(ctx, "--output", "json", "watch", "-r", "/w")
	waitWatching(t, cc, out, `{"type":"NodeDataChanged","path":"/w",`)
	mark := len(out.String())
	cc.ok("create", "/w/j")
	cc.ok("delete", "/w/j")
	var evs []eventDoc
	waitFor(t, "the events", func() bool {
		evs = nil
		for _, l := range strings.Split(strings.TrimSuffix(out.String()[mark:], "\n"), "\n") {
			var ev eventDoc
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				return false
			}
			if ev.Path != "/w" {
				evs = append(evs, ev)
			}
		}
		return len(evs) == 2
	})
	if evs[0].Type != "NodeCreated" || evs[0].Path != "/w/j" || evs[1].Type != "NodeDeleted" || evs[1].Zxid <= evs[0].Zxid {
		t.Fatalf("events: %+v", evs)
	}
	cancel()
	if code := waitExit(t, done); code != 0 || errs.String() != "" {
		t.Fatalf("interrupted watch: exit %d, stderr %q", code, errs.String())
	}
}
