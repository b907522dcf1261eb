package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/grovekit/grove/client"
	"github.com/grovekit/grove/server"
)

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: adminTransport{http.DefaultTransport}}

// adminCreds are what the running command's requests to a node's HTTP
// port carry, read once when its flags are parsed: the bearer token (""
// none) and, with --http-tls-ca, the transport for https:// addresses (nil:
// the system's roots).
type adminCreds struct {
	token string
	https http.RoundTripper
}

var admin atomic.Pointer[adminCreds]

// tokenFileFlag adds --token-file and --http-tls-ca to a command that talks
// to a node's HTTP port. The function it returns reads them, for every
// request the command sends.
func tokenFileFlag(fs *pflag.FlagSet) func() error {
	f := fs.String("token-file", os.Getenv("GROVE_TOKEN_FILE"), "file holding the node's HTTP bearer token (env GROVE_TOKEN_FILE; default: the per-user token of a loopback cluster)")
	ca := fs.String("http-tls-ca", os.Getenv("GROVE_HTTP_TLS_CA"), "CA file verifying the node's HTTPS certificate (give --http as https://HOST:PORT)")
	return func() error {
		c := &adminCreds{}
		file := *f
		if file == "" {
			file = defaultTokenFile() // the per-user token of a loopback cluster, if any
		}
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return usagef("--token-file: %v", err)
			}
			c.token = strings.TrimSpace(string(b))
		}
		if *ca != "" {
			pool, err := certPool("--http-tls-ca", *ca)
			if err != nil {
				return err
			}
			c.https = &http.Transport{ResponseHeaderTimeout: 30 * time.Second,
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		admin.Store(c)
		return nil
	}
}

// adminURL is the URL of path on the node at addr: addr is host:port (plain
// HTTP) or a URL base such as https://host:port.
// notHTTP explains a reply that was not HTTP at all: the address is most
// likely a client port given where an HTTP port belongs.
func notHTTP(addr string, err error) error {
	if strings.Contains(err.Error(), "malformed HTTP") {
		return fmt.Errorf("%s does not speak HTTP (a client port? those go in --servers; --http takes a node's HTTP port): %w", addr, err)
	}
	return err
}

func adminURL(addr, path string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/") + path
	}
	return "http://" + addr + path
}

// adminTransport marks every request as a Grove tool's (the HTTP port
// refuses POSTs without it, against cross-site requests) and adds the
// bearer token of the command's adminCreds.
type adminTransport struct{ base http.RoundTripper }

func (t adminTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(server.GroveRequestHeader, "1")
	base := t.base
	if c := admin.Load(); c != nil {
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.https != nil && r.URL.Scheme == "https" {
			base = c.https
		}
	}
	return base.RoundTrip(r)
}

// httpFlags returns the --http flag of a command that talks to one node's
// HTTP port, the parser of its arguments (flags may follow them), and
// resolve, which the command calls once its arguments check out: without
// --http (or GROVE_HTTP) it asks the servers of --servers for the HTTP
// port of one of them (adminAddr). define, if given, adds the command's
// own flags.
func httpFlags(g *globals, name, synopsis string, define ...func(*pflag.FlagSet)) (fsAddr *string, parseFn func([]string) ([]string, error), resolve func() error) {
	fs := newCmdFlags(name)
	addr := httpFlag(fs)
	for _, d := range define {
		d(fs)
	}
	useToken := tokenFileFlag(fs)
	return addr, func(args []string) ([]string, error) {
			if err := parseCmd(fs, synopsis, args, g.stdout); err != nil {
				return nil, err
			}
			if err := useToken(); err != nil {
				return nil, err
			}
			return fs.Args(), nil
		}, func() error {
			return g.adminAddr(fs, addr)
		}
}

// httpFlag defines --http on fs.
func httpFlag(fs *pflag.FlagSet) *string {
	return fs.String("http", "", "a node's HTTP address, http[s]://HOST:PORT or HOST:PORT (default: the HTTP port of a server of --servers, which tells it)")
}

// adminAddr fills *addr, when --http was not given, with the HTTP admin
// address of one of the servers of --servers, which each client port
// announces: the client ports are the one address a user needs to give.
// It fails at once, naming the servers, when none is listening.
func (g *globals) adminAddr(fs *pflag.FlagSet, addr *string) error {
	if fs.Changed("http") {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	servers := strings.Join(g.servers, ",")
	opts := append([]client.Option{client.WithTimeout(g.timeout), client.WithFailFast()}, g.opts...)
	s, err := dial(ctx, g.servers, opts...)
	if err != nil {
		return fmt.Errorf("find a node's HTTP port through --servers %s: %w", servers, err)
	}
	defer func() { _ = s.Close(context.WithoutCancel(ctx)) }()
	if *addr = s.AdminURL(); *addr == "" {
		return fmt.Errorf("the server reached through --servers %s announces no HTTP port; give --http", servers)
	}
	return nil
}

func getJSON(addr, path string, v any) error {
	resp, err := httpClient.Get(adminURL(addr, path))
	if err != nil {
		return notHTTP(addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s: %s %s", path, resp.Status, e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func runStatus(g *globals, args []string) error {
	output, stdout := g.output, g.stdout
	addr, parseArgs, resolve := httpFlags(g, "status", "status [--http ADDR]")
	rest, err := parseArgs(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("status: unexpected argument %q", rest[0])
	}
	if err := resolve(); err != nil {
		return err
	}
	var st server.StatusReply
	if err := getJSON(*addr, "/status", &st); err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(stdout).Encode(st)
	}
	fmt.Fprintf(stdout, "node %s (%s): %s, leader %s, term %d, applied %d, commit %d\n",
		st.Name, st.ID, st.Role, st.Leader, st.Term, st.AppliedIndex, st.CommitIndex)
	fmt.Fprintf(stdout, "voters %d, learners %d, gossip members %d\n", len(st.Voters), len(st.Learners), len(st.GossipMembers))
	for _, d := range st.Drift {
		fmt.Fprintln(stdout, "drift:", d)
	}
	return nil
}

func runMembers(g *globals, args []string) error {
	output, stdout := g.output, g.stdout
	addr, parseArgs, resolve := httpFlags(g, "members", "members [--http ADDR] [remove NAME | add NAME | transfer-leader [NAME] | leave]")
	rest, err := parseArgs(args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0 && rest[0] == "leave" && len(rest) > 1:
		return usagef("usage: grove members leave (the node reached through --servers or --http leaves)")
	case len(rest) > 0 && rest[0] == "transfer-leader" && len(rest) > 2:
		return usagef("usage: grove members transfer-leader [NAME]")
	case len(rest) > 0 && rest[0] != "transfer-leader" && rest[0] != "leave" && ((rest[0] != "remove" && rest[0] != "add") || len(rest) != 2):
		return usagef("usage: grove members [remove NAME | add NAME | transfer-leader [NAME] | leave]")
	}
	if err := resolve(); err != nil {
		return err
	}
	if len(rest) > 0 && rest[0] == "transfer-leader" {
		return transferLeader(*addr, rest[1:], output, stdout)
	}
	if len(rest) > 0 && rest[0] == "leave" {
		return leaveCluster(*addr, stdout)
	}
	if len(rest) > 0 {
		resp, err := httpClient.Post(adminURL(*addr, "/members/"+rest[0]+"?name="+url.QueryEscape(rest[1])), "", nil)
		if err != nil {
			return notHTTP(*addr, err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("%s %s: %s %v", rest[0], rest[1], resp.Status, body["error"])
		}
		if rest[0] == "add" {
			fmt.Fprintf(stdout, "approved %s: the leader adds it once it proves itself on the peer port\n", rest[1])
			return nil
		}
		fmt.Fprintf(stdout, "removed %s\n", rest[1])
		return nil
	}
	var members []server.GossipMember
	if err := getJSON(*addr, "/members", &members); err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(stdout).Encode(members)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tGOSSIP\tRAFT\tPEER\tHTTP")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.State, m.RaftRole, m.PeerAddr, m.HTTPAddr)
	}
	return tw.Flush()
}

// transferLeader implements grove members transfer-leader [NAME]: the
// leader hands leadership to NAME, or to the most caught-up voter, and
// the command prints the new leader once it leads.
func transferLeader(addr string, args []string, output string, stdout io.Writer) error {
	if len(args) > 1 {
		return usagef("usage: grove members transfer-leader [NAME]")
	}
	path := "/members/transfer-leader"
	if len(args) == 1 {
		path += "?name=" + url.QueryEscape(args[0])
	}
	resp, err := httpClient.Post(adminURL(addr, path), "", nil)
	if err != nil {
		return notHTTP(addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Leader string `json:"leader"`
		Name   string `json:"name"`
		Error  string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("transfer-leader: %s %s", resp.Status, body.Error)
	}
	if output == "json" {
		return json.NewEncoder(stdout).Encode(map[string]string{"leader": body.Leader, "name": body.Name})
	}
	fmt.Fprintf(stdout, "leader is now %s (%s)\n", body.Name, body.Leader)
	return nil
}

// runSessions implements grove sessions: the cluster's open sessions with
// their timeouts and ephemeral znodes.
func runSessions(g *globals, args []string) error {
	output, stdout := g.output, g.stdout
	var ephemerals *bool
	addr, parseArgs, resolve := httpFlags(g, "sessions", "sessions [--http ADDR] [--ephemerals]", func(fs *pflag.FlagSet) {
		ephemerals = fs.BoolP("ephemerals", "e", false, "list each session's ephemeral znodes")
	})
	rest, err := parseArgs(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("sessions: unexpected argument %q", rest[0])
	}
	if err := resolve(); err != nil {
		return err
	}
	path := "/sessions"
	if *ephemerals {
		path += "?ephemerals=1"
	}
	var sessions []server.SessionInfo
	if err := getJSON(*addr, path, &sessions); err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(stdout).Encode(sessions)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tTIMEOUT\tEPHEMERALS")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%v\t%d\n", s.ID, time.Duration(s.TimeoutMs)*time.Millisecond, s.EphemeralCount)
		for _, p := range s.Ephemerals {
			fmt.Fprintf(tw, "\t\t%s\n", p)
		}
	}
	return tw.Flush()
}

// runDefrag implements grove defrag: compact the state file of the node
// reached through --servers (or --http), online.
func runDefrag(g *globals, args []string) error {
	addr, parseArgs, resolve := httpFlags(g, "defrag", "defrag [--http ADDR]")
	rest, err := parseArgs(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("defrag: unexpected argument %q", rest[0])
	}
	if err := resolve(); err != nil {
		return err
	}
	patient := *httpClient
	patient.Timeout = 0 // a big file takes as long as it takes
	resp, err := patient.Post(adminURL(*addr, "/defrag"), "", nil)
	if err != nil {
		return notHTTP(*addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var reply struct {
		server.DefragReply
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("defrag: %s %s", resp.Status, reply.Error)
	}
	if g.output == "json" {
		return json.NewEncoder(g.stdout).Encode(reply.DefragReply)
	}
	if reply.HandedOverTo != "" {
		fmt.Fprintf(g.stdout, "handed leadership to %s first\n", reply.HandedOverTo)
	}
	fmt.Fprintf(g.stdout, "state file %d -> %d bytes\n", reply.BeforeBytes, reply.AfterBytes)
	return nil
}

// leaveCluster implements grove members leave: the node reached leaves the
// cluster for good and its process exits.
func leaveCluster(addr string, stdout io.Writer) error {
	resp, err := httpClient.Post(adminURL(addr, "/members/leave"), "", nil)
	if err != nil {
		return notHTTP(addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Leaving string `json:"leaving"`
		Error   string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("leave: %s %s", resp.Status, body.Error)
	}
	fmt.Fprintf(stdout, "%s is leaving the cluster\n", body.Leaving)
	return nil
}
