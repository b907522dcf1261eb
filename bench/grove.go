package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// buildGrove builds ./cmd/grove of the grove module the harness uses (the
// repository it runs in: bench's go.mod replaces the module with ..),
// without -race (so a race-built test still runs fast servers), into dir.
func buildGrove(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/grovekit/grove").Output()
	if err != nil {
		return "", fmt.Errorf("find the grove module: %w; run from the repository", err)
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		return "", fmt.Errorf("not inside the grove repository; run from it")
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", "grove")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/grove")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/grove: %w\n%s", err, out)
	}
	return bin, nil
}

// groveCluster is three `grove server` processes formed with
// --bootstrap-expect 3, with default timing and fsync on.
type groveCluster struct {
	procs     []*proc
	dirs      []string
	http      []string // --http-addr
	native    []string // --client-addr
	zk        []string // --zk-addr
	zkClients bool     // addrs returns the zk ports
	token     string   // the HTTP bearer token of the cluster
}

// newGroveCluster lays out a cluster under dir; zkClients selects the
// ZooKeeper-wire ports as the client addresses.
func newGroveCluster(bin, dir string, zkClients bool) (*groveCluster, error) {
	ports, err := freePorts(15)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	// The cluster's own secrets, as an operator would give them (a
	// loopback cluster given none would use the user's per-user ones).
	c := &groveCluster{zkClients: zkClients, token: "bench-http-token-0123456789"}
	keyFile, tokenFile := filepath.Join(dir, "cluster.key"), filepath.Join(dir, "http.token")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, []byte("bench-cluster-key-0123456789abcdef0123\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	var seeds []string
	for i := range 3 {
		seeds = append(seeds, addr(5*i))
	}
	for i := range 3 {
		name := fmt.Sprintf("grove%d", i+1)
		d := filepath.Join(dir, name)
		c.dirs = append(c.dirs, d)
		c.http = append(c.http, addr(5*i+2))
		c.native = append(c.native, addr(5*i+3))
		c.zk = append(c.zk, addr(5*i+4))
		c.procs = append(c.procs, &proc{
			name: name,
			log:  filepath.Join(dir, name+".log"),
			argv: []string{bin, "server", "--name", name, "--data-dir", d,
				"--gossip-addr", addr(5 * i), "--peer-addr", addr(5*i + 1), "--http-addr", addr(5*i + 2),
				"--client-addr", addr(5*i + 3), "--zk-addr", addr(5*i + 4),
				"--join", strings.Join(seeds, ","), "--bootstrap-expect", "3", "--log-level", "warn",
				// No connection caps, as ZooKeeper runs with maxClientCnxns=0.
				"--max-client-conns", "0", "--max-client-conns-per-ip", "0",
				"--cluster-key-file", keyFile, "--token-file", tokenFile},
		})
	}
	return c, nil
}

func (c *groveCluster) start(ctx context.Context) error { return startAll(ctx, c) }
func (c *groveCluster) nodes() []*proc                  { return c.procs }
func (c *groveCluster) dataDir(i int) string            { return c.dirs[i] }

func (c *groveCluster) addrs() []string {
	if c.zkClients {
		return c.zk
	}
	return c.native
}

// groveStatus is the part of GET /status the harness reads.
type groveStatus struct {
	Role string `json:"role"`
}

func (c *groveCluster) status(ctx context.Context, i int) (groveStatus, error) {
	var st groveStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.http[i]+"/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := statusClient.Do(req)
	if err != nil {
		return st, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (c *groveCluster) isLeader(ctx context.Context, i int) (bool, error) {
	st, err := c.status(ctx, i)
	if err != nil {
		return false, err
	}
	switch st.Role {
	case "leader":
		return true, nil
	case "follower":
		return false, nil
	}
	return false, fmt.Errorf("role %q", st.Role)
}

func (c *groveCluster) leader(ctx context.Context) (int, error) { return oneLeader(ctx, c, c.isLeader) }

func (c *groveCluster) ready(ctx context.Context) error {
	_, err := c.leader(ctx)
	return err
}
