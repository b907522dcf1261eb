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
		{[]string{"de"}, []string{"defrag", "delete"}},
		{[]string{"del"}, []string{"delete"}},
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

// The fish script, loaded in a real fish, completes commands and flags
// (fish's complete -C asks for a command line's completions); the zsh
// script is at least valid zsh. Each skips without its shell, unless
// GROVE_REQUIRE_COMPAT=1 (CI installs them).
func TestFishAndZshCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "grove")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "HOME="+dir)
	shell := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
				t.Fatalf("%s not found (GROVE_REQUIRE_COMPAT=1)", name)
			}
			t.Skipf("%s not installed", name)
		}
		return p
	}
	fish := exec.Command(shell("fish"), "--no-config", "-c", `grove completion fish | source; complete -C "grove tr"; complete -C "grove members tr"; complete -C "grove delete --r"`)
	fish.Env = env
	out, err := fish.CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"tree", "transfer-leader", "--recursive"}) {
		t.Fatalf("fish completions: %q", got)
	}
	zsh := exec.Command(shell("zsh"), "-f", "-c", `autoload -U compinit && compinit -u && source <(grove completion zsh) && whence -w _grove`)
	zsh.Env = env
	if out, err := zsh.CombinedOutput(); err != nil || !strings.Contains(string(out), "_grove: function") {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
}
