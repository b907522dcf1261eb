package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// deployDir holds the Prometheus rules and the Grafana dashboard.
const deployDir = "../deploy"

// TestAlertRulesPassPromtool checks the alert rules with promtool (Debian
// prometheus): the syntax and every expression, then the rules' own unit
// tests. Without promtool the test skips, unless GROVE_REQUIRE_COMPAT=1
// (CI installs it).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("GROVE_REQUIRE_COMPAT") == "1" {
			t.Fatal("promtool not found (GROVE_REQUIRE_COMPAT=1)")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "grove-alerts.yml"}, {"test", "rules", "grove-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricName matches the names of the metric families Grove exports
// (its own, the Go runtime's and the process's) in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:grove|go|process)_[a-zA-Z0-9_]+`)

// TestDashboardAndAlertsNameExportedMetrics runs a three-node cluster,
// sends requests through both client ports, and checks that every metric
// the alert rules and the dashboard name is exported by the servers, and
// that docs/operations.md lists every grove_* family they export.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	tc := startCluster(t, 3, func(c *Config) {
		c.ClientAddr, c.ZKAddr = freeAddr(t), freeAddr(t)
	})
	waitFor(t, "a leader", func() bool { return tc.leader() != nil })
	leader := tc.leader()
	ctx := t.Context()
	s, err := client.Dial(ctx, []string{leader.ClientAddr()}, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	if _, err := s.Create(ctx, "/metrics-test", []byte("x"), grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	conn, events, err := zk.Connect([]string{leader.ZKAddr()}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for ev := range events {
		if ev.State == zk.StateHasSession {
			break
		}
	}
	if _, _, err := conn.Get("/metrics-test"); err != nil {
		t.Fatal(err)
	}

	var exported []string
	waitFor(t, "request and peer round-trip figures", func() bool {
		exported = nil
		for _, srv := range tc.all() {
			_, body := httpGet(t, srv, "/metrics")
			exported = append(exported, scrapedNames(body)...)
		}
		return slices.Contains(exported, "grove_request_duration_seconds_count") &&
			slices.Contains(exported, "grove_peer_round_trip_seconds_count")
	})
	_, body := httpGet(t, leader, "/metrics")
	for _, want := range []string{`op="create",protocol="native"`, `op="getData",protocol="zookeeper"`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics has no request figures with %s", want)
		}
	}

	named := map[string][]string{} // metric → the files naming it
	rules, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "grove-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(rules))
	exprs := 0
	for sc.Scan() {
		if expr, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "expr:"); ok {
			exprs++
			for _, m := range metricName.FindAllString(expr, -1) {
				named[m] = append(named[m], "grove-alerts.yml")
			}
		}
	}
	dashExprs := dashboardExprs(t, filepath.Join(deployDir, "grafana", "grove-dashboard.json"))
	for _, expr := range dashExprs {
		for _, m := range metricName.FindAllString(expr, -1) {
			named[m] = append(named[m], "grove-dashboard.json")
		}
	}
	if exprs < 10 || len(dashExprs) < 20 {
		t.Fatalf("found %d rule and %d dashboard expressions: the files were not read as meant", exprs, len(dashExprs))
	}
	for m, files := range named {
		if !slices.Contains(exported, m) {
			t.Errorf("%s names %s, which no server exports", slices.Compact(files), m)
		}
	}

	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(base, "grove_") && !bytes.Contains(ops, []byte("`"+base+"`")) {
			t.Errorf("docs/operations.md does not list %s", base)
		}
	}
}

// scrapedNames returns the sample names in a Prometheus text exposition.
func scrapedNames(body []byte) []string {
	var names []string
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end > 0 {
			names = append(names, line[:end])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// dashboardExprs returns the PromQL expressions of a Grafana dashboard's
// panels and template variables.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	return exprs
}
