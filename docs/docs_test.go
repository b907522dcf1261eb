// Package docs_test keeps the documentation honest: every Go code block in
// README.md and docs/*.md is compiled, and every shell block is checked by
// bash and by the grove binary's own flag parsing, so the docs cannot rot.
package docs_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// block is one fenced code block.
type block struct {
	file string
	line int
	lang string
	code string
	// notRun is the reason given in a "<!-- not run: REASON -->" line
	// right before the block ("" for a block TestDocsRunForReal runs).
	notRun string
}

// docFiles returns README.md and docs/*.md, relative to the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Join("docs", f)
	}
	return append([]string{"README.md"}, files...)
}

// blocks returns the fenced code blocks of the file at root/path.
func blocks(t *testing.T, root, path string) []block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	prev := ""
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{file: path, line: i + 1, lang: strings.TrimPrefix(trimmed, "```")}
			if reason, ok := strings.CutPrefix(prev, "<!-- not run: "); ok {
				cur.notRun = strings.TrimSuffix(reason, " -->")
			}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		}
		prev = trimmed
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed code block", path, cur.line)
	}
	return out
}

// goImports are what a Go fragment (statements, not a whole file) may use
// without importing: the wrapper imports them all.
var goImports = map[string]string{
	"context":   "context.Background",
	"errors":    "errors.New",
	"fmt":       "fmt.Println",
	"log":       "log.Println",
	"time":      "time.Second",
	"os":        "os.Exit",
	"grove":     "grove.ModePersistent",
	"client":    "client.Dial",
	"core":      "core.DefaultConfig",
	"server":    "server.Start",
	"lock":      "lock.NewMutex",
	"election":  "election.New",
	"config":    "config.New[string]",
	"queue":     "queue.New",
	"backup":    "backup.Write",
	"filepath":  "filepath.Join",
	"slog":      "slog.Default",
	"errgroup":  "errgroup.WithContext",
	"transport": "transport.DefaultConfig",
}

var importPaths = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "time": "time", "os": "os",
	"grove": "github.com/grovekit/grove", "client": "github.com/grovekit/grove/client",
	"core": "github.com/grovekit/grove/core", "server": "github.com/grovekit/grove/server",
	"lock": "github.com/grovekit/grove/recipes/lock", "election": "github.com/grovekit/grove/recipes/election",
	"config": "github.com/grovekit/grove/recipes/config", "queue": "github.com/grovekit/grove/recipes/queue",
	"backup": "github.com/grovekit/grove/backup", "filepath": "path/filepath", "slog": "log/slog",
	"errgroup": "golang.org/x/sync/errgroup", "transport": "github.com/grovekit/grove/transport",
}

// wrapGo turns a fragment of statements into a compilable file: it runs in
// func example(ctx context.Context) error, with the packages above
// imported.
func wrapGo(code string) string {
	if strings.HasPrefix(strings.TrimSpace(code), "package ") {
		return code
	}
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	for name, path := range importPaths {
		fmt.Fprintf(&b, "\t%s %q\n", name, path)
	}
	b.WriteString(")\n\nvar (\n")
	for _, sym := range goImports {
		fmt.Fprintf(&b, "\t_ = %s\n", sym)
	}
	b.WriteString(")\n\nfunc main() { _ = example(context.Background()) }\n\n")
	b.WriteString("func example(ctx context.Context) error {\n")
	b.WriteString(code)
	lines := strings.Split(strings.TrimSpace(code), "\n")
	if !strings.HasPrefix(strings.TrimSpace(lines[len(lines)-1]), "return ") {
		b.WriteString("\treturn nil\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Every Go block compiles: whole files as they are, fragments inside a
// function with the common packages imported.
func TestGoBlocksCompile(t *testing.T) {
	root := ".."
	scratch, err := os.MkdirTemp(root, "_doctest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(scratch) })
	where := map[string]block{}
	n := 0
	for _, f := range docFiles(t) {
		for _, bl := range blocks(t, root, f) {
			if bl.lang != "go" {
				continue
			}
			n++
			name := fmt.Sprintf("b%03d", n)
			dir := filepath.Join(scratch, name)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(wrapGo(bl.code)), 0o600); err != nil {
				t.Fatal(err)
			}
			where[name] = bl
		}
	}
	if n == 0 {
		t.Fatal("no Go blocks found: the scan is broken")
	}
	var pkgs []string
	for name := range where {
		pkgs = append(pkgs, "./"+filepath.Base(scratch)+"/"+name)
	}
	cmd := exec.Command("go", append([]string{"vet"}, pkgs...)...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := out.String()
		for name, bl := range where {
			msg = strings.ReplaceAll(msg, filepath.Base(scratch)+"/"+name+"/main.go", fmt.Sprintf("[%s block at line %d]", bl.file, bl.line))
		}
		t.Fatalf("doc code does not compile:\n%s", msg)
	}
	t.Logf("%d Go blocks compile", n)
}

// groveCall finds grove invocations in a shell line: "grove" or "./grove"
// and its arguments up to a shell operator.
var groveCall = regexp.MustCompile(`(?:^|[;&|(]|\bdo|\bthen)\s*(?:\./)?grove((?:\s+[^\s;&|)]+)*)`)

// Every shell block is valid bash, and every grove command in it parses:
// the binary is run with the same arguments plus -h, which checks the
// command and each flag before it prints help and exits 0.
func TestShellBlocksParse(t *testing.T) {
	root := ".."
	bin := filepath.Join(t.TempDir(), "grove")
	build := exec.Command("go", "build", "-o", bin, "./cmd/grove")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build grove: %v\n%s", err, out)
	}
	calls := 0
	for _, f := range docFiles(t) {
		for _, bl := range blocks(t, root, f) {
			if bl.lang != "sh" && bl.lang != "bash" {
				continue
			}
			syntax := exec.Command("bash", "-n")
			syntax.Stdin = strings.NewReader(bl.code)
			if out, err := syntax.CombinedOutput(); err != nil {
				t.Errorf("%s:%d: bash -n: %v\n%s", bl.file, bl.line, err, out)
			}
			code := strings.ReplaceAll(bl.code, "\\\n", " ")
			for _, line := range strings.Split(code, "\n") {
				if i := strings.Index(line, " #"); i >= 0 {
					line = line[:i]
				}
				for _, m := range groveCall.FindAllStringSubmatch(line, -1) {
					args := strings.Fields(m[1])
					if len(args) == 0 || strings.HasPrefix(args[0], "<") {
						continue
					}
					for i, a := range args {
						args[i] = strings.Trim(a, `"'`)
					}
					calls++
					// -h goes before a "--": what follows is a command's
					// own arguments (grove lock DIR -- CMD).
					if i := slices.Index(args, "--"); i >= 0 {
						args = slices.Insert(args, i, "-h")
					} else {
						args = append(args, "-h")
					}
					cmd := exec.Command(bin, args...)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("%s:%d: grove %s: %v\n%s", bl.file, bl.line, strings.Join(args, " "), err, out)
					}
				}
			}
		}
	}
	if calls == 0 {
		t.Fatal("no grove commands found in the docs: the scan is broken")
	}
	t.Logf("%d grove invocations parse", calls)
}

// Every flag of grove server is in docs/cluster.md's table, written as
// `--name` or in a group like `--peer-tls-ca/-cert/-key`.
func TestClusterDocListsEveryServerFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "grove")
	build := exec.Command("go", "build", "-o", bin, "./cmd/grove")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build grove: %v\n%s", err, out)
	}
	help, _ := exec.Command(bin, "server", "-h").CombinedOutput()
	flags := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(help), -1)
	if len(flags) < 20 {
		t.Fatalf("found %d flags in grove server -h: the scan is broken\n%s", len(flags), help)
	}
	doc, err := os.ReadFile("cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(--[^`]+)`").FindAllStringSubmatch(string(doc), -1) {
		// "--peer-tls-ca/-cert/-key" names --peer-tls-ca, --peer-tls-cert
		// and --peer-tls-key.
		parts := strings.Split(m[1], "/")
		documented = append(documented, parts[0])
		stem := parts[0][:strings.LastIndex(parts[0], "-")]
		for _, p := range parts[1:] {
			documented = append(documented, stem+p)
		}
	}
	for _, f := range flags {
		if !slices.Contains(documented, "--"+f[1]) {
			t.Errorf("docs/cluster.md's flag table lacks --%s", f[1])
		}
	}
}
