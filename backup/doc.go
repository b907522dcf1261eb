// Package backup writes, reads, verifies and restores Grove backup files:
// a consistent, self-checking copy of a cluster's znode tree.
//
// A backup is taken from one live node inside a single read transaction of
// its data file (Write), so it is exactly the state at one applied index
// (zxid) while writes go on. It holds every znode that outlives its session
// (persistent, sequential, container and TTL nodes, with data, Stat and
// ACL); sessions and ephemerals belong to the cluster that owns them and are
// left out.
//
// # File format (version 1)
//
//	magic    "GROVEBAK"                      8 bytes
//	version  1                               1 byte
//	flags    1 = gzip, 2 = AES-256-GCM       1 byte
//	header   big-endian length + JSON Header  4 + n bytes
//	body     records, gzipped and/or encrypted as the flags say
//	checksum SHA-256 of every byte before it  32 bytes
//
// A record is a type byte, a uvarint length and its payload: a node (path
// and the node's stored record) or the end record with the totals, which
// lets a reader tell a complete body from a truncated one. Encryption seals
// the body in 64 KiB chunks, each with its own nonce (a random prefix from
// the header and a counter) and a flag marking the last chunk, so reordered,
// dropped or truncated chunks fail to open. The user's key is 32 bytes; each
// file is sealed under its own key derived from it and a random salt
// (HKDF-SHA256), so nonces never repeat under one key.
//
// Reader verifies everything as it goes and reports, with typed errors, a
// file that is not a backup (ErrNotBackup), of an unknown format version
// (ErrVersion), encrypted without a key (ErrNeedKey) or with the wrong one
// (ErrWrongKey), or damaged (ErrCorrupt: a checksum mismatch, a truncation,
// a malformed record). Seed restores a file into a new data dir.
package backup
