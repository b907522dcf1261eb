package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
)

// TestClientRidesThroughServerKill connects a remote session to a
// three-process cluster, keeps it writing (sequential creates, which are
// not idempotent, and sets) and watching, and SIGKILLs the server it is
// connected to. The session must re-attach elsewhere without surfacing an
// error, apply every create exactly once, and keep its watches.
func TestClientRidesThroughServerKill(t *testing.T) {
	c := newProcCluster(t)
	all := c.startThree("n")
	n1, n2, n3 := all[0], all[1], all[2]
	addrs := []string{n1.client, n2.client, n3.client}
	ctx := t.Context()
	s, err := client.Dial(ctx, addrs, client.WithTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(context.Background()) }()
	for _, p := range []string{"/jobs", "/counter"} {
		if _, err := s.Create(ctx, p, nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
			t.Fatal(err)
		}
	}
	_, _, flagW, err := s.ExistsW(ctx, "/flag")
	if err != nil {
		t.Fatal(err)
	}
	counterW, err := s.AddWatch(ctx, "/counter", false)
	if err != nil {
		t.Fatal(err)
	}

	// The workload: every call gets a minute, far more than a failover.
	var mu sync.Mutex
	var created []string
	var failures []error
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				p, err := s.Create(cctx, "/jobs/j-", []byte(fmt.Sprint(w, i)), grove.ModePersistentSequential, grove.OpenACLUnsafe)
				if err == nil {
					_, err = s.Set(cctx, "/counter", []byte(fmt.Sprint(i)), -1)
				}
				if err == nil {
					_, _, err = s.Get(cctx, p)
				}
				cancel()
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					created = append(created, p)
				}
				mu.Unlock()
			}
		})
	}
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(created) }
	c.waitFor("writes before the kill", 30*time.Second, func() bool { return acked() >= 20 })

	// Kill the server the session is connected to.
	var victim *proc
	c.waitFor("the connected server", 10*time.Second, func() bool {
		for _, p := range all {
			if st, err := status(p.httpAdr); err == nil && st.ClientConns == 1 {
				victim = p
				return true
			}
		}
		return false
	})
	before := acked()
	c.kill(victim)
	t.Logf("killed %s (the session's server) after %d acknowledged creates", victim.name, before)
	c.waitFor("writes after the kill", 60*time.Second, func() bool { return acked() >= before+20 })
	close(done)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d calls failed across the kill; first: %v", len(failures), failures[0])
	}
	names, stat, err := s.Children(ctx, "/jobs")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(created))
	for i, p := range created {
		want[i] = p[len("/jobs/"):]
	}
	slices.Sort(want)
	if !slices.Equal(names, want) || int(stat.NumChildren) != len(created) {
		t.Fatalf("%d children, %d acknowledged creates: a create was duplicated or lost", len(names), len(created))
	}
	t.Logf("%d sequential creates, each applied exactly once", len(created))

	// The watches set before the kill still fire.
	var survivor *proc
	for _, p := range all {
		if p != victim {
			survivor = p
		}
	}
	other, err := client.Dial(ctx, []string{survivor.client})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close(context.Background()) }()
	if _, err := other.Create(ctx, "/flag", nil, grove.ModePersistent, grove.OpenACLUnsafe); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-flagW:
		if ev.Type != grove.EventNodeCreated {
			t.Fatalf("exists watch: %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the exists watch set before the kill never fired")
	}
	st, err := other.Set(ctx, "/counter", []byte("final"), -1)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-counterW.C:
			if ev.Zxid == st.Mzxid {
				return
			}
		case <-deadline:
			t.Fatal("the persistent watch set before the kill missed a later change")
		}
	}
}
