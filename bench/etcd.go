package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// etcdBin is the server of Debian's etcd-server package.
const etcdBin = "/usr/bin/etcd"

// etcdCluster is three etcd servers with default timing (100 ms heartbeat,
// 1 s election timeout); etcd fsyncs its WAL before acknowledging.
type etcdCluster struct {
	procs   []*proc
	dirs    []string
	clients []string
}

func newEtcdCluster(dir string) (*etcdCluster, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	url := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("etcd%d=%s", i+1, url(ports[2*i+1])))
	}
	c := &etcdCluster{}
	for i := range 3 {
		name := fmt.Sprintf("etcd%d", i+1)
		d := filepath.Join(dir, name)
		c.dirs = append(c.dirs, d)
		c.clients = append(c.clients, "127.0.0.1:"+strconv.Itoa(ports[2*i]))
		c.procs = append(c.procs, &proc{
			name: name,
			log:  filepath.Join(dir, name+".log"),
			argv: []string{etcdBin, "--name", name, "--data-dir", d,
				"--listen-client-urls", url(ports[2*i]), "--advertise-client-urls", url(ports[2*i]),
				"--listen-peer-urls", url(ports[2*i+1]), "--initial-advertise-peer-urls", url(ports[2*i+1]),
				"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
				"--initial-cluster-token", "grove-bench", "--logger", "zap", "--log-level", "warn"},
		})
	}
	return c, nil
}

func (c *etcdCluster) start(ctx context.Context) error { return startAll(ctx, c) }
func (c *etcdCluster) nodes() []*proc                  { return c.procs }
func (c *etcdCluster) addrs() []string                 { return c.clients }
func (c *etcdCluster) dataDir(i int) string            { return c.dirs[i] }

// etcdStatus is the part of the maintenance status (through etcd's JSON
// gateway) the harness reads; the ids are uint64 sent as JSON strings.
type etcdStatus struct {
	Header struct {
		MemberID json.RawMessage `json:"member_id"`
	} `json:"header"`
	Leader json.RawMessage `json:"leader"`
}

func (c *etcdCluster) isLeader(ctx context.Context, i int) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.clients[i]+"/v3/maintenance/status", bytes.NewReader([]byte("{}")))
	if err != nil {
		return false, err
	}
	resp, err := statusClient.Do(req)
	if err != nil {
		return false, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status: %s", resp.Status)
	}
	var st etcdStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return false, err
	}
	leader := strings.Trim(string(st.Leader), `"`)
	if leader == "" || leader == "0" {
		return false, fmt.Errorf("no leader known")
	}
	return leader == strings.Trim(string(st.Header.MemberID), `"`), nil
}

func (c *etcdCluster) leader(ctx context.Context) (int, error) { return oneLeader(ctx, c, c.isLeader) }

func (c *etcdCluster) ready(ctx context.Context) error {
	_, err := c.leader(ctx)
	return err
}
