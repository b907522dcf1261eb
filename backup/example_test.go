package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grovekit/grove"
	"github.com/grovekit/grove/backup"
	"github.com/grovekit/grove/core"
)

// startNode starts a one-node cluster in a temporary dir.
func startNode(dir string) *core.Node {
	cfg := core.DefaultConfig()
	cfg.ID, cfg.DataDir, cfg.Peers = 1, dir, []core.Peer{{ID: 1}}
	n, err := core.StartNode(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	return n
}

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "grove-backup-example-")
	defer os.RemoveAll(dir)
	n := startNode(filepath.Join(dir, "source"))
	defer n.Close()
	s, err := n.Session(ctx)
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)
	_, _ = s.Create(ctx, "/app", []byte("settings"), grove.ModePersistent, grove.OpenACLUnsafe)
	_, _ = s.Create(ctx, "/app/db", []byte("postgres://db"), grove.ModePersistent, grove.OpenACLUnsafe)
	_, _ = s.Create(ctx, "/app/cache", []byte("redis://cache"), grove.ModePersistent, grove.OpenACLUnsafe)
	_, _ = s.Create(ctx, "/app/worker", nil, grove.ModeEphemeral, grove.OpenACLUnsafe)

	// Take a backup: a consistent copy while the node keeps serving.
	key := bytes.Repeat([]byte{42}, backup.KeySize)
	var file bytes.Buffer
	_, totals, err := backup.Write(ctx, n, &file, backup.Options{Gzip: true, Key: key})
	fmt.Println("znodes:", totals.Znodes, "ephemerals left out:", totals.Ephemerals, err)

	// Verify it and look inside.
	sum, err := backup.Inspect(bytes.NewReader(file.Bytes()), key, 1, nil)
	fmt.Println("verified:", err == nil, "largest subtree:", sum.Largest[0].Path)

	// Seed a new node's data dir from it (server.Restore does this
	// atomically for grove restore).
	_, _, err = backup.Seed(bytes.NewReader(file.Bytes()), key, filepath.Join(dir, "restored"), 7)
	fmt.Println("seeded:", err == nil, core.Seeded(filepath.Join(dir, "restored")))
	// Output:
	// znodes: 7 ephemerals left out: 1 <nil>
	// verified: true largest subtree: /app
	// seeded: true true
}
