package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one server process the harness starts, kills and restarts. It is
// used from the orchestrating goroutine only.
type proc struct {
	name string
	argv []string // argv[0] is the binary
	log  string   // stdout and stderr are appended here

	cmd   *exec.Cmd
	donec chan struct{} // closed when the running process has exited
}

// start runs the process. It must not be running.
func (p *proc) start() error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The kernel kills the server if the harness dies without cleaning up
	// (SIGKILL of the harness, a panic in a worker goroutine).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	donec := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(donec)
	}()
	p.cmd, p.donec = cmd, donec
	return nil
}

// running reports whether the process is started and has not exited.
func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.donec:
		return false
	default:
		return true
	}
}

// pid returns the process id, or 0 when it is not running.
func (p *proc) pid() int {
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// kill sends SIGKILL and waits for the process to exit. It is a no-op when
// the process is not running.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.donec
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the user plus system CPU time the process has used so
// far, from /proc/PID/stat (all threads).
func cpuTime(pid int) (time.Duration, error) {
	d, _, err := procStat(strconv.Itoa(pid))
	return d, err
}

// pfKthread is the PF_KTHREAD bit of the flags in /proc/PID/stat.
const pfKthread = 0x00200000

// procStat returns the utime+stime of /proc/PID/stat and whether the
// process is a kernel thread.
func procStat(pid string) (time.Duration, bool, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name may hold spaces and parentheses; fields after the
	// last ')' start with field 3 (state).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false, fmt.Errorf("short /proc/%s/stat", pid)
	}
	flags, err0 := strconv.ParseUint(f[6], 10, 64)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return 0, false, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, flags&pfKthread != 0, nil
}

// kernelThreadsCPU returns the CPU time all kernel threads (kworkers,
// the ext4 journal, ksoftirqd) have used: work the servers' fsyncs and
// sockets cause without it showing in their own times.
func kernelThreadsCPU() time.Duration {
	entries, _ := os.ReadDir("/proc")
	var total time.Duration
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if d, kthread, err := procStat(e.Name()); err == nil && kthread {
			total += d
		}
	}
	return total
}

// machineBusy returns the CPU time the machine has used since boot
// (/proc/stat: user, nice, system, irq, softirq, steal).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rss returns the resident set size of the process (VmRSS).
func rss(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// diskUsage returns the bytes allocated on disk to the files under dir
// (what du reports, so preallocated logs count at their allocated size).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago. Another process may take one before the server binds it; the
// cluster then fails to start and says which port.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls cond until it returns nil, ctx ends or timeout passes; it
// returns cond's last error on timeout. Between calls it waits interval.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}
