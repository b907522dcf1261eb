// Package config is a configuration center on a Grove session: typed
// values at znodes with compare-and-set writes, watchers that see every
// version the cluster lets them see, in order, and a view of a whole
// subtree kept current through one recursive watch.
//
// Values are JSON by default; pass a Codec for anything else. Watching is
// built on persistent watches, which a session carries across reconnects
// (missed changes are reported on re-attach), so a watcher that lost its
// connection catches up instead of missing the latest value.
package config
