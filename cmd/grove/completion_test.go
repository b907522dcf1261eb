package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// complete returns grove __complete's candidates for words.
func complete(words ...string) []string {
	var out bytes.Buffer
	runComplete(words, &out)
	return strings.Fields(out.String())
}

func TestCompleteCommandsAndFlags(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"de"}, []string{"delete"}},
		{[]string{"--servers", "x:1", "st"}, []string{"stat", "status"}},
		{[]string{"--output", "y"}, []string{"yaml"}},
		{[]string{"delete", "--r"}, []string{"--recursive"}},
		{[]string{"lock", "--"}, []string{"--help", "--try"}},
		{[]string{"server", "--data"}, []string{"--data-dir"}},
		{[]string{"members", "tr"}, []string{"transfer-leader"}},
		{[]string{"completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"--t"}, []string{"--timeout", "--tls-ca", "--tls-cert", "--tls-key"}},
	} {
		if got := complete(tc.words...); !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// The bash script, sourced in a real bash, completes a command and a znode
// path asked of the cluster.
func TestBashCompletionScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	cc := mustCluster(t)
	cc.ok("create", "/apps")
	cc.ok("create", "/apps/alpha")
	cc.ok("create", "/apps/alpha/x")
	cc.ok("create", "/apps/beta")
	dir := t.TempDir()
	bin := filepath.Join(dir, "grove")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var script bytes.Buffer
	if code := run([]string{"completion", "bash"}, &script, &script); code != 0 {
		t.Fatalf("completion bash: exit %d: %s", code, script.String())
	}
	probe := script.String() + `
complete_words() {
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
	_grove
	printf '%s\n' "${COMPREPLY[@]}"
}
complete_words grove tr
echo --
complete_words grove --servers "$SERVERS" get /apps/
`
	cmd := exec.Command(bash, "--norc", "-c", probe)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "SERVERS="+cc.servers)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	want := "tree\n--\n/apps/alpha\n/apps/alpha/\n/apps/beta\n"
	if string(out) != want {
		t.Fatalf("bash completion printed %q, want %q", out, want)
	}
}
