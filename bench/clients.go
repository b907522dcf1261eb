package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/recipes/lock"
)

// sessionTimeout is the session (etcd: lease) timeout of every client.
const sessionTimeout = 10 * time.Second

// Conn is one independent client session (its own connection) against a
// cluster. A Conn is used by one goroutine at a time. Paths are znode
// paths; for etcd they are keys.
type Conn interface {
	// Create creates path holding data; parents must exist. An existing
	// node is left as it is (etcd overwrites the key).
	Create(ctx context.Context, path string, data []byte) error
	// CreateSeq creates a persistent sequential node prefix<seq>; etcd
	// puts a key that did not exist, prefix<session>-<counter>.
	CreateSeq(ctx context.Context, prefix string, data []byte) error
	// Set overwrites the data of an existing node, any version.
	Set(ctx context.Context, path string, data []byte) error
	// Delete removes a node without children, any version.
	Delete(ctx context.Context, path string) error
	// Get reads path and fails if it is missing. With linearizable false
	// the server answers from its local state (etcd: serializable); true
	// asks for an up-to-date value: Grove's Linearizable read option,
	// ZooKeeper's sync then get, etcd's default linearizable range.
	Get(ctx context.Context, path string, linearizable bool) error
	// Mutex returns the system's standard lock recipe on dir for this
	// session.
	Mutex(ctx context.Context, dir string) (Mutex, error)
	// Close ends the session.
	Close()
}

// Mutex is a distributed lock recipe held by one session.
type Mutex interface {
	// Lock blocks until the lock is held or ctx ends (the ZooKeeper
	// recipe then closes its session: go-zookeeper's Lock cannot be
	// cancelled otherwise).
	Lock(ctx context.Context) error
	// Unlock releases the lock.
	Unlock(ctx context.Context) error
}

// dialer opens a Conn to a cluster through the given addresses.
type dialer func(ctx context.Context, addrs []string) (Conn, error)

// errMissing is returned by Get for a node that does not exist.
var errMissing = errors.New("bench: node missing")

// groveConn is a native Grove session (client.Dial).
type groveConn struct{ s *client.Session }

func dialGrove(ctx context.Context, addrs []string) (Conn, error) {
	s, err := client.Dial(ctx, addrs, client.WithTimeout(sessionTimeout))
	if err != nil {
		return nil, err
	}
	return &groveConn{s: s}, nil
}

func (g *groveConn) Create(ctx context.Context, path string, data []byte) error {
	_, err := g.s.Create(ctx, path, data, grove.ModePersistent, grove.OpenACLUnsafe)
	if errors.Is(err, grove.ErrNodeExists) {
		return nil
	}
	return err
}

func (g *groveConn) CreateSeq(ctx context.Context, prefix string, data []byte) error {
	_, err := g.s.Create(ctx, prefix, data, grove.ModePersistentSequential, grove.OpenACLUnsafe)
	return err
}

func (g *groveConn) Set(ctx context.Context, path string, data []byte) error {
	_, err := g.s.Set(ctx, path, data, -1)
	return err
}

// Expired reports whether the session has ended without being closed.
func (g *groveConn) Expired() bool {
	select {
	case <-g.s.Done():
		return true
	default:
		return false
	}
}

func (g *groveConn) Delete(ctx context.Context, path string) error {
	return g.s.Delete(ctx, path, -1)
}

func (g *groveConn) Get(ctx context.Context, path string, linearizable bool) error {
	var opts []client.ReadOption
	if linearizable {
		opts = append(opts, client.Linearizable())
	}
	_, _, err := g.s.Get(ctx, path, opts...)
	return err
}

func (g *groveConn) Mutex(_ context.Context, dir string) (Mutex, error) {
	return lock.NewMutex(g.s, dir), nil
}

func (g *groveConn) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	_ = g.s.Close(ctx)
}

// zkConn is a go-zookeeper session, against ZooKeeper or Grove's zk port.
// Its calls cannot be cancelled; they fail when the connection drops.
type zkConn struct{ c *zk.Conn }

// quietLogger drops go-zookeeper's connection log lines.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func dialZK(ctx context.Context, addrs []string) (Conn, error) {
	c, events, err := zk.Connect(addrs, sessionTimeout, zk.WithLogger(quietLogger{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return &zkConn{c: c}, nil
			}
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("zk connect: %w", ctx.Err())
		}
	}
}

var zkACL = zk.WorldACL(zk.PermAll)

func (z *zkConn) Create(_ context.Context, path string, data []byte) error {
	_, err := z.c.Create(path, data, 0, zkACL)
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

func (z *zkConn) CreateSeq(_ context.Context, prefix string, data []byte) error {
	_, err := z.c.Create(prefix, data, zk.FlagSequence, zkACL)
	return err
}

func (z *zkConn) Set(_ context.Context, path string, data []byte) error {
	_, err := z.c.Set(path, data, -1)
	return err
}

func (z *zkConn) Delete(_ context.Context, path string) error {
	return z.c.Delete(path, -1)
}

func (z *zkConn) Get(_ context.Context, path string, linearizable bool) error {
	if linearizable {
		if _, err := z.c.Sync(path); err != nil {
			return err
		}
	}
	_, _, err := z.c.Get(path)
	return err
}

func (z *zkConn) Mutex(_ context.Context, dir string) (Mutex, error) {
	return zkMutex{c: z.c, l: zk.NewLock(z.c, dir, zkACL)}, nil
}

func (z *zkConn) Close() { z.c.Close() }

// zkMutex adapts zk.Lock, the Curator-style recipe of go-zookeeper
// (protected ephemeral-sequential node, watch on the predecessor).
type zkMutex struct {
	c *zk.Conn
	l *zk.Lock
}

// Lock waits for the lock. zk.Lock cannot be cancelled, so when ctx ends
// first the session is closed, which makes the wait fail.
func (m zkMutex) Lock(ctx context.Context) error {
	stop := context.AfterFunc(ctx, m.c.Close)
	defer stop()
	return m.l.Lock()
}

func (m zkMutex) Unlock(context.Context) error { return m.l.Unlock() }

// etcdConn is an etcd client (its own gRPC connection, balanced over the
// endpoints); sess is the lease session its mutexes use.
type etcdConn struct {
	c    *clientv3.Client
	id   string // distinguishes this client's CreateSeq keys
	n    int
	sess *concurrency.Session
}

func dialEtcd(ctx context.Context, addrs []string) (Conn, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   addrs,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		Context:     context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &etcdConn{c: c, id: strconv.FormatUint(rand.Uint64(), 36)}, nil
}

func (e *etcdConn) Create(ctx context.Context, path string, data []byte) error {
	_, err := e.c.Put(ctx, path, string(data))
	return err
}

func (e *etcdConn) CreateSeq(ctx context.Context, prefix string, data []byte) error {
	e.n++
	_, err := e.c.Put(ctx, prefix+e.id+"-"+strconv.Itoa(e.n), string(data))
	return err
}

func (e *etcdConn) Set(ctx context.Context, path string, data []byte) error {
	_, err := e.c.Put(ctx, path, string(data))
	return err
}

func (e *etcdConn) Delete(ctx context.Context, path string) error {
	_, err := e.c.Delete(ctx, path)
	return err
}

func (e *etcdConn) Get(ctx context.Context, path string, linearizable bool) error {
	var opts []clientv3.OpOption
	if !linearizable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := e.c.Get(ctx, path, opts...)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s: %w", path, errMissing)
	}
	return nil
}

func (e *etcdConn) Mutex(ctx context.Context, dir string) (Mutex, error) {
	if e.sess == nil {
		s, err := concurrency.NewSession(e.c, concurrency.WithTTL(int(sessionTimeout/time.Second)), concurrency.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			return nil, err
		}
		e.sess = s
	}
	return concurrency.NewMutex(e.sess, dir+"/"), nil
}

func (e *etcdConn) Close() {
	if e.sess != nil {
		_ = e.sess.Close()
	}
	_ = e.c.Close()
}
