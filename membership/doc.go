// Package membership is Grove's discovery layer: hashicorp/memberlist
// gossips each node's metadata (name, raft ID, peer, client, ZooKeeper-wire
// and HTTP addresses, role, whether it holds raft state) and reports who is
// alive, suspect, dead or gone.
//
// Gossip gives hints only; raft's configuration is the authority on who
// votes. Package server reconciles the two (bootstrap, adding learners,
// promotion, graceful leave, dead-voter cleanup).
//
// # Usage
//
//	g, err := membership.Start(membership.Config{
//		BindAddr: "127.0.0.1:7946",
//		Join:     []string{"127.0.0.1:7947"},
//		Meta:     membership.Meta{Name: "n1", RaftID: id, PeerAddr: "127.0.0.1:2380"},
//	})
//	defer g.Close()
//	peers, err := membership.WaitBootstrap(ctx, g, 3)
package membership
