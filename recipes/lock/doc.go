// Package lock provides distributed locks on a Grove session: Mutex (FIFO
// fair, with a fencing token), RWMutex (shared readers, exclusive writers,
// writers never starved) and Semaphore (N holders).
//
// Every acquisition is an ephemeral sequential node under the lock's
// directory; contenders queue in sequence order and each waits on the one
// node that must go before it (no herd). An acquisition carries a fencing
// token — the creation zxid of its node — that grows with every
// acquisition of the lock, and a guard op that makes a Multi commit only
// while the lock is held. Lost() is closed the moment the hold may be
// gone: the node was deleted, the session ended, or the session's deadline
// passed with no keep-alive extending it (the cluster may have expired it
// and granted the lock to the next waiter).
//
// Calls work the same over a remote (client.Dial) or an embedded
// (core.Node.Session) session, take a ctx, and clean up their node when a
// wait is cancelled or fails. The session is the caller's: recipes never
// close it.
package lock
