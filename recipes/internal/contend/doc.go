// Package contend holds what the ordering recipes (lock, semaphore,
// election) share: ephemeral sequential contender nodes in a directory,
// waiting on a predecessor without a herd, cleaning up after a cancelled
// wait, and watching a held node for its loss.
package contend
