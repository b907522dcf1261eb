package grove

// Stat is the metadata of a znode, field for field ZooKeeper's Stat. Zxids
// are raft log indexes; times are milliseconds since the Unix epoch, decided
// by the leader and carried in the log entry.
type Stat struct {
	Czxid          int64 // zxid of the change that created the znode
	Mzxid          int64 // zxid of the change that last modified its data
	Ctime          int64 // creation time, ms since the epoch
	Mtime          int64 // last data change time, ms since the epoch
	Version        int32 // number of changes to the data
	Cversion       int32 // number of changes to the children (low 32 bits)
	Aversion       int32 // number of changes to the ACL
	EphemeralOwner int64 // owning session of an ephemeral; see EphemeralOwner* for containers and TTL nodes
	DataLength     int32 // length of the data
	NumChildren    int32 // number of children
	Pzxid          int64 // zxid of the last change to the children
}

// Special EphemeralOwner values, as ZooKeeper encodes them: a container node
// has EphemeralOwnerContainer, a TTL node has EphemeralOwnerTTLBit set with
// its TTL in milliseconds in the low 40 bits.
const (
	EphemeralOwnerContainer int64 = -1 << 63
	EphemeralOwnerTTLBit    int64 = -1 << 56 // 0xFF00000000000000
	MaxTTL                  int64 = 1<<40 - 1
)

// SessionOwner returns the owning session of an ephemeral znode, and 0 for
// every other znode, containers and TTL nodes included: what ZooKeeper
// reports to clients as ephemeralOwner (their markers are internal).
func (s *Stat) SessionOwner() int64 {
	if s.IsEphemeral() {
		return s.EphemeralOwner
	}
	return 0
}

// IsEphemeral reports whether the stat belongs to an ephemeral znode owned
// by a session.
func (s *Stat) IsEphemeral() bool {
	return s.EphemeralOwner != 0 && s.EphemeralOwner != EphemeralOwnerContainer &&
		s.EphemeralOwner&EphemeralOwnerTTLBit != EphemeralOwnerTTLBit
}
