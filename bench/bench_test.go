package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	maybeHold() // a helper process of the sessions workload
	goleak.VerifyTestMain(m)
}

// TestSmoke runs the harness in its CI mode (Grove only, a second per
// workload) and checks that every workload measured something and the
// output files parse. It asserts no timings.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts grove server processes")
	}
	dir := t.TempDir()
	cfg := SmokeConfig()
	cfg.Out = filepath.Join(dir, "results.json")
	cfg.SVG = filepath.Join(dir, "results.svg")
	cfg.Markdown = filepath.Join(dir, "RESULTS.md")
	cfg.Log = testLog{t}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) > 0 {
		t.Errorf("notes: %q", rep.Notes)
	}
	for _, target := range []string{"grove", "grove-zk"} {
		for _, w := range []string{wCreate, wSet, wGet, wGetLin} {
			for _, c := range cfg.Clients {
				checkThroughput(t, rep, target, w, c)
			}
		}
		for _, c := range cfg.LockWorkers {
			checkThroughput(t, rep, target, wLock, c)
		}
		for _, w := range []string{wScaleSetEmpty, wScaleSetFull} {
			for _, c := range scaleClients {
				checkThroughput(t, rep, target, w, c)
			}
		}
		checkThroughput(t, rep, target, wScaleWide, 1)
		if f, ok := rep.find(target, wFailover, 1); !ok || len(f.GapsS) != cfg.FailoverRuns || f.MaxGapS <= 0 {
			t.Errorf("%s failover: %+v (found %v)", target, f, ok)
		}
	}
	if x, ok := rep.find("grove", wRecover, 0); !ok || x.RestartS <= 0 || x.RSSBytes <= 0 || x.DataDirBytes <= 0 || x.Nodes != cfg.RecoverNodes {
		t.Errorf("grove recover: %+v (found %v)", x, ok)
	}

	var back Report
	mustParse(t, cfg.Out, func(b []byte) error { return json.Unmarshal(b, &back) })
	if len(back.Results) != len(rep.Results) {
		t.Errorf("JSON holds %d results, the run %d", len(back.Results), len(rep.Results))
	}
	mustParse(t, cfg.SVG, parseXML)
	mustParse(t, cfg.Markdown, func(b []byte) error {
		for _, want := range []string{"## Goals", "## Throughput and latency", "## Failover and restart", "results.svg"} {
			if !strings.Contains(string(b), want) {
				return errors.New("no " + want)
			}
		}
		return nil
	})
}

// TestSessionsHeldInHelpers runs the sessions workload small: its idle
// sessions are held by three helper processes (this test binary again),
// and none may expire while a writer runs beside them.
func TestSessionsHeldInHelpers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts grove server processes")
	}
	cfg := SmokeConfig()
	cfg.Workloads = []string{wSessions}
	cfg.Sessions, cfg.SessionsPerProcess, cfg.SessionsHold = 250, 100, time.Second
	cfg.Out = filepath.Join(t.TempDir(), "results.json")
	cfg.Log = testLog{t}
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	held, ok := rep.find("grove", wSessionsHeld, sessionsWriters)
	// LeaderIdleCPUms is not checked: over a 1 s window the leader's CPU
	// may round to 0 ms in /proc's 10 ms ticks.
	if !ok || held.Sessions != 250 || held.Expired != 0 || held.Ops <= 0 {
		t.Errorf("sessions-held: %+v (found %v)", held, ok)
	}
	checkThroughput(t, rep, "grove", wSessionsBaseline, sessionsWriters)
}

func checkThroughput(t *testing.T, rep *Report, target, w string, c int) {
	t.Helper()
	r, ok := rep.find(target, w, c)
	if !ok || r.Ops <= 0 || r.OpsPerSec <= 0 || r.P99Ms <= 0 {
		t.Errorf("%s %s C=%d: %+v (found %v)", target, w, c, r, ok)
	}
}

func mustParse(t *testing.T, path string, parse func([]byte) error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(b); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// parseXML reads every token of an XML document.
func parseXML(b []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// testLog writes the harness's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
