package grove

// Version is Grove's release. The ZooKeeper port reports
// 3.9.3-grove-<Version>, the grove CLI and /status report it as it is.
const Version = "0.1"
