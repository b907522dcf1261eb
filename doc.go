// Package grove is the shared vocabulary of Grove, a replicated, durable,
// ZooKeeper-compatible znode store: the Stat of a znode, create modes, watch
// event types, ACLs and permissions, the operations of a multi, path rules
// and the sentinel errors with their stable numeric codes.
//
// The package is deliberately light: it imports nothing beyond the standard
// library, so every other package (core, client, zkwire, recipes) can share
// these types without pulling in raft or bbolt.
//
// # Errors
//
// Every sentinel error carries a stable numeric code (see [Code] and
// [ErrorCode]). Where ZooKeeper defines a code for the same condition, Grove
// uses ZooKeeper's number, so the ZooKeeper-wire front maps them one to one.
// Codes cross the wire and come back as the same sentinel, so
// errors.Is(err, grove.ErrNoNode) holds on a remote caller.
//
// Grove's packages wrap errors one way: "op thing: %w", where op is what
// failed and thing what it failed on, prefixed by the package where the
// error starts ("membership: start gossip on ADDR: %w"). A call on a
// znode through package client fails with a client.PathError ("get /a:
// grove: node does not exist"). A decoder that refuses input classifies it as "%w: detail"
// with a sentinel first (grove.ErrBadRequest, backup.ErrCorrupt): the
// sentinel is the API, and the detail (a decoder's own error) is text only.
package grove
