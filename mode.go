package grove

import "fmt"

// CreateMode says what kind of znode Create makes. The values are
// ZooKeeper's CreateMode flags.
type CreateMode int32

// Create modes.
const (
	ModePersistent                  CreateMode = 0
	ModeEphemeral                   CreateMode = 1
	ModePersistentSequential        CreateMode = 2
	ModeEphemeralSequential         CreateMode = 3
	ModeContainer                   CreateMode = 4
	ModePersistentWithTTL           CreateMode = 5
	ModePersistentSequentialWithTTL CreateMode = 6
)

// Valid reports whether m is a known create mode.
func (m CreateMode) Valid() bool { return m >= ModePersistent && m <= ModePersistentSequentialWithTTL }

// IsEphemeral reports whether m creates a session-owned znode.
func (m CreateMode) IsEphemeral() bool { return m == ModeEphemeral || m == ModeEphemeralSequential }

// IsSequential reports whether m appends a sequence number to the name.
func (m CreateMode) IsSequential() bool {
	return m == ModePersistentSequential || m == ModeEphemeralSequential || m == ModePersistentSequentialWithTTL
}

// IsContainer reports whether m creates a container znode.
func (m CreateMode) IsContainer() bool { return m == ModeContainer }

// IsTTL reports whether m creates a znode with a time to live.
func (m CreateMode) IsTTL() bool {
	return m == ModePersistentWithTTL || m == ModePersistentSequentialWithTTL
}

// String returns the name of the CreateMode.
func (m CreateMode) String() string {
	switch m {
	case ModePersistent:
		return "persistent"
	case ModeEphemeral:
		return "ephemeral"
	case ModePersistentSequential:
		return "persistent_sequential"
	case ModeEphemeralSequential:
		return "ephemeral_sequential"
	case ModeContainer:
		return "container"
	case ModePersistentWithTTL:
		return "persistent_ttl"
	case ModePersistentSequentialWithTTL:
		return "persistent_sequential_ttl"
	}
	return fmt.Sprintf("CreateMode(%d)", int32(m))
}
