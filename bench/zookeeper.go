package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// zkJar is the ZooKeeper server of Debian's zookeeper package; its
// manifest's Class-Path names the jars it needs.
const zkJar = "/usr/share/java/zookeeper.jar"

// zkLogJars bind ZooKeeper's slf4j logging to log4j 1.2 (both Debian
// packages come with zookeeper), configured by log4j.properties below.
var zkLogJars = []string{"/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"}

const zkLog4j = `log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] %-5p [%t:%C{1}@%L] %m%n
`

// zkCluster is three ZooKeeper 3.8 servers (QuorumPeerMain) with
// forceSync=yes, the four-letter words srvr and ruok enabled and the
// shipped timing (tickTime 2000, initLimit 10, syncLimit 5). The JVM gets
// ZooKeeper's usual 1000 MB heap limit (-Xmx1000m, from upstream zkEnv.sh).
type zkCluster struct {
	procs   []*proc
	dirs    []string
	clients []string
}

func newZKCluster(dir string) (*zkCluster, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	var servers strings.Builder
	for i := range 3 {
		fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d\n", i+1, ports[3*i+1], ports[3*i+2])
	}
	c := &zkCluster{}
	for i := range 3 {
		name := fmt.Sprintf("zk%d", i+1)
		conf := filepath.Join(dir, name)
		data := filepath.Join(conf, "data")
		cfg := fmt.Sprintf(`tickTime=2000
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
forceSync=yes
4lw.commands.whitelist=srvr,ruok
admin.enableServer=false
maxClientCnxns=0
%s`, data, ports[3*i], servers.String())
		if err := writeFile(data, "myid", strconv.Itoa(i+1)+"\n"); err != nil {
			return nil, err
		}
		if err := writeFile(conf, "zoo.cfg", cfg); err != nil {
			return nil, err
		}
		if err := writeFile(conf, "log4j.properties", zkLog4j); err != nil {
			return nil, err
		}
		cp := strings.Join(append([]string{conf, zkJar}, zkLogJars...), ":")
		c.dirs = append(c.dirs, data)
		c.clients = append(c.clients, "127.0.0.1:"+strconv.Itoa(ports[3*i]))
		c.procs = append(c.procs, &proc{
			name: name,
			log:  filepath.Join(dir, name+".log"),
			argv: []string{"/usr/bin/java", "-Xmx1000m", "-cp", cp,
				"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(conf, "zoo.cfg")},
		})
	}
	return c, nil
}

func (c *zkCluster) start(ctx context.Context) error { return startAll(ctx, c) }
func (c *zkCluster) nodes() []*proc                  { return c.procs }
func (c *zkCluster) addrs() []string                 { return c.clients }
func (c *zkCluster) dataDir(i int) string            { return c.dirs[i] }

// fourLetter sends a four-letter word to addr and returns the answer.
func fourLetter(ctx context.Context, addr, word string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, word); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// isLeader reads the Mode line of srvr: leader or follower once the node
// serves.
func (c *zkCluster) isLeader(ctx context.Context, i int) (bool, error) {
	out, err := fourLetter(ctx, c.clients[i], "srvr")
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(out) {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			switch mode = strings.TrimSpace(mode); mode {
			case "leader":
				return true, nil
			case "follower":
				return false, nil
			default:
				return false, fmt.Errorf("mode %s", mode)
			}
		}
	}
	return false, fmt.Errorf("not serving: %q", strings.TrimSpace(out))
}

func (c *zkCluster) leader(ctx context.Context) (int, error) { return oneLeader(ctx, c, c.isLeader) }

func (c *zkCluster) ready(ctx context.Context) error {
	_, err := c.leader(ctx)
	return err
}
