// Package election elects one leader among the sessions campaigning at a
// directory, in the manner of etcd's concurrency.Election, on a Grove
// session (remote or embedded).
//
// Each candidate is an ephemeral sequential node holding its value; the
// lowest leads. A candidate waits on its immediate predecessor only (no
// herd). Leadership comes with a term — the creation zxid of the leader's
// node, larger for every later leader — and a Lost() channel closed the
// moment leadership may be gone: the node was deleted, the session ended,
// or the session's deadline passed with no keep-alive extending it. A
// campaigner whose session expires therefore never believes it still
// leads.
package election
