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
package grove
