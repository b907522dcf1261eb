package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/internal/exampletest"
)

// startCluster starts a three-node in-process cluster with client ports
// and returns their addresses.
func startCluster() (addrs []string, stop func()) {
	c := exampletest.Start()
	return c.Addrs, c.Stop
}

// dial opens a remote session on the example cluster.
func dial(addrs []string, opts ...client.Option) *client.Session {
	s, err := client.Dial(context.Background(), addrs, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

func ExampleDial() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	// Any server of the cluster will do; the session moves to another one
	// if its server goes away.
	s, err := client.Dial(ctx, addrs, client.WithTimeout(5*time.Second))
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)
	p, err := s.Create(ctx, "/hello", []byte("world"), grove.ModePersistent, grove.OpenACLUnsafe)
	fmt.Println(p, err)
	// Output:
	// /hello <nil>
}

func ExampleSession_Get() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/cfg", []byte("v1"), grove.ModePersistent, grove.OpenACLUnsafe)
	data, stat, err := s.Get(ctx, "/cfg")
	fmt.Println(string(data), stat.Version, err)
	_, _, err = s.Get(ctx, "/missing")
	fmt.Println(err)
	// Output:
	// v1 0 <nil>
	// get /missing: grove: node does not exist
}

func ExampleSession_GetW() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/cfg", []byte("v1"), grove.ModePersistent, grove.OpenACLUnsafe)
	_, _, changed, _ := s.GetW(ctx, "/cfg")
	_, _ = s.Set(ctx, "/cfg", []byte("v2"), -1)
	ev := <-changed
	fmt.Println(ev.Type, ev.Path)
	// Output:
	// NodeDataChanged /cfg
}

func ExampleSession_Set() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/n", []byte("a"), grove.ModePersistent, grove.OpenACLUnsafe)
	stat, err := s.Set(ctx, "/n", []byte("b"), 0) // only if still version 0
	fmt.Println(stat.Version, err)
	_, err = s.Set(ctx, "/n", []byte("c"), 0)
	fmt.Println(err)
	// Output:
	// 1 <nil>
	// set /n: grove: version conflict
}

func ExampleSession_Delete() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/gone", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	fmt.Println(s.Delete(ctx, "/gone", -1))
	fmt.Println(s.Delete(ctx, "/gone", -1))
	// Output:
	// <nil>
	// delete /gone: grove: node does not exist
}

func ExampleSession_Exists() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	ok, _, err := s.Exists(ctx, "/nope")
	fmt.Println(ok, err)
	// Output:
	// false <nil>
}

func ExampleSession_ExistsW() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	ok, _, appeared, _ := s.ExistsW(ctx, "/ready")
	fmt.Println("exists:", ok)
	_, _ = s.Create(ctx, "/ready", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	fmt.Println((<-appeared).Type)
	// Output:
	// exists: false
	// NodeCreated
}

func ExampleSession_Children() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/d", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	for _, n := range []string{"b", "a"} {
		_, _ = s.Create(ctx, "/d/"+n, nil, grove.ModePersistent, grove.OpenACLUnsafe)
	}
	names, stat, err := s.Children(ctx, "/d")
	fmt.Println(names, stat.NumChildren, err)
	// Output:
	// [a b] 2 <nil>
}

func ExampleSession_ChildrenW() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/members", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	names, _, changed, _ := s.ChildrenW(ctx, "/members")
	fmt.Println(names)
	_, _ = s.Create(ctx, "/members/m1", nil, grove.ModeEphemeral, grove.OpenACLUnsafe)
	fmt.Println((<-changed).Type)
	// Output:
	// []
	// NodeChildrenChanged
}

func ExampleSession_Create2() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	p, stat, err := s.Create2(ctx, "/e", []byte("x"), grove.ModeEphemeral, grove.OpenACLUnsafe)
	fmt.Println(p, stat.DataLength, stat.EphemeralOwner == int64(s.ID()), err)
	// Output:
	// /e 1 true <nil>
}

func ExampleSession_CreateTTL() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	p, err := s.CreateTTL(ctx, "/lease", nil, grove.ModePersistentWithTTL, grove.OpenACLUnsafe, time.Hour)
	fmt.Println(p, err)
	// Output:
	// /lease <nil>
}

func ExampleSession_SetACL() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/ro", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	_, err := s.SetACL(ctx, "/ro", []grove.ACL{{Perms: grove.PermRead, Scheme: "world", ID: "anyone"}}, -1)
	fmt.Println(err)
	_, err = s.Set(ctx, "/ro", []byte("x"), -1)
	fmt.Println(err)
	acl, _, _ := s.GetACL(ctx, "/ro")
	fmt.Println(acl[0].Scheme, acl[0].ID, acl[0].Perms == grove.PermRead)
	// Output:
	// <nil>
	// set /ro: grove: not authorized
	// world anyone true
}

func ExampleSession_CountDescendants() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	for _, p := range []string{"/t", "/t/a", "/t/a/b", "/t/c"} {
		_, _ = s.Create(ctx, p, nil, grove.ModePersistent, grove.OpenACLUnsafe)
	}
	n, err := s.CountDescendants(ctx, "/t")
	fmt.Println(n, err)
	// Output:
	// 3 <nil>
}

func ExampleSession_Ephemerals() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/svc", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	_, _ = s.Create(ctx, "/svc/me", nil, grove.ModeEphemeral, grove.OpenACLUnsafe)
	paths, err := s.Ephemerals(ctx, "/svc")
	fmt.Println(paths, err)
	// Output:
	// [/svc/me] <nil>
}

func ExampleLinearizable() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	writer, reader := dial(addrs[:1]), dial(addrs[1:2])
	defer writer.Close(ctx)
	defer reader.Close(ctx)
	_, _ = writer.Create(ctx, "/fresh", []byte("yes"), grove.ModePersistent, grove.OpenACLUnsafe)
	// Another session on another server: a linearizable read sees every
	// write acknowledged before it started.
	data, _, err := reader.Get(ctx, "/fresh", client.Linearizable())
	fmt.Println(string(data), err)
	// Output:
	// yes <nil>
}

func ExampleSession_Close() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	_, _ = s.Create(ctx, "/mine", nil, grove.ModeEphemeral, grove.OpenACLUnsafe)
	fmt.Println(s.Close(ctx))
	<-s.Done()
	fmt.Println(s.Err())
	other := dial(addrs)
	defer other.Close(ctx)
	ok, _, _ := other.Exists(ctx, "/mine", client.Linearizable())
	fmt.Println("ephemeral still there:", ok)
	// Output:
	// <nil>
	// grove: session closed
	// ephemeral still there: false
}

func ExampleSession_Events() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	fmt.Println(<-s.Events())
	_ = s.Close(ctx)
	for st := range s.Events() {
		fmt.Println(st)
	}
	// Output:
	// connected
	// closed
}

func ExampleSession_Deadline() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs, client.WithTimeout(4*time.Second))
	defer s.Close(ctx)
	// What the session holds is certain until its deadline.
	left := time.Until(s.Deadline())
	fmt.Println(left > 0 && left <= s.Timeout())
	// Output:
	// true
}

func ExampleWatch_Remove() {
	addrs, stop := startCluster()
	defer stop()
	ctx := context.Background()
	s := dial(addrs)
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/w", nil, grove.ModePersistent, grove.OpenACLUnsafe)
	w, _ := s.AddWatch(ctx, "/w", false)
	fmt.Println(w.Remove(ctx))
	_, open := <-w.C
	fmt.Println("channel open:", open)
	// Output:
	// <nil>
	// channel open: false
}
