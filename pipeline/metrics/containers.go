package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// containerSet is the CPU and memory of each Kubernetes pod and container
// on the node, read from the kubelet's cgroups: cgroup v2 (unified) when the
// root has cgroup.controllers, else cgroup v1 (cpuacct and memory
// hierarchies); both the systemd driver's layout
// (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope)
// and the cgroupfs driver's (kubepods/burstable/pod<uid>/<id>). Each event
// carries the pod uid and, for containers, the container id; namespace and
// pod name come from the agent's Kubernetes metadata (Config.Pods) or else
// from the kubelet's log links, which also give container names (see
// logNames), so that the pod's metadata labels the event as it labels the
// pod's logs.
//
// CPU: the cumulative usage (cpu.usage.core.ns, a counter) and, from the
// second sample, its rate in nanocores (billionths of a core), as a
// fraction of the cgroup's CPU limit where it has one (limit.pct) and of
// the node's cores (node.pct). Memory: usage, working set (usage −
// inactive_file, what the kubelet evicts on) and the limit where set.
type containerSet struct {
	s     *Sampler
	root  string
	c     counters
	names *logNames
}

// cgroupStat is what one cgroup reports.
type cgroupStat struct {
	cpuNs     uint64  // cumulative CPU time
	cpuLimit  float64 // cores; 0: none
	memUsage  uint64
	inactive  uint64 // inactive_file
	memLimit  uint64 // 0: none
	hasCPU    bool
	hasMemory bool
}

// cgroupKind tells how to read a cgroup directory.
type cgroupKind struct {
	v2 bool
	// cgroup v1: the cpuacct, cpu (quota) and memory hierarchies; a
	// cgroup is the same relative path under each.
	cpuRoot, quotaRoot, memRoot string
}

func (c *containerSet) kind() (cgroupKind, error) {
	if _, err := os.Stat(filepath.Join(c.root, "cgroup.controllers")); err == nil {
		return cgroupKind{v2: true}, nil
	}
	k := cgroupKind{}
	for _, d := range []string{"cpu,cpuacct", "cpuacct,cpu", "cpuacct"} {
		if _, err := os.Stat(filepath.Join(c.root, d, "cpuacct.usage")); err == nil {
			k.cpuRoot = filepath.Join(c.root, d)
			break
		}
	}
	k.quotaRoot = k.cpuRoot
	if filepath.Base(k.cpuRoot) == "cpuacct" {
		k.quotaRoot = filepath.Join(c.root, "cpu") // mounted apart from cpuacct
	}
	if _, err := os.Stat(filepath.Join(c.root, "memory", "memory.usage_in_bytes")); err == nil {
		k.memRoot = filepath.Join(c.root, "memory")
	}
	if k.cpuRoot == "" && k.memRoot == "" {
		return k, fmt.Errorf("%s: neither cgroup v2 (cgroup.controllers) nor cgroup v1 (cpuacct, memory)", c.root)
	}
	return k, nil
}

var (
	podDir = regexp.MustCompile(`^(?:kubepods(?:-[a-z]+)?-)?pod([0-9a-fA-F_-]+)(?:\.slice)?$`)
	// Runtime prefixes of a container's cgroup name (systemd driver) and
	// CRI-O's monitor, which is no container.
	runtimePrefix = regexp.MustCompile(`^(?:cri-containerd|docker|crio|containerd)-`)
	hexID         = regexp.MustCompile(`^[0-9a-fA-F]{12,}$`)
)

// podUID returns the pod uid in a pod cgroup's name, or "".
func podUID(name string) string {
	m := podDir.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	return strings.ReplaceAll(m[1], "_", "-")
}

// containerID returns the container id in a container cgroup's name, or "".
func containerID(name string) string {
	if strings.Contains(name, "conmon") {
		return ""
	}
	id := strings.TrimSuffix(runtimePrefix.ReplaceAllString(name, ""), ".scope")
	if !hexID.MatchString(id) {
		return ""
	}
	return id
}

// pods returns the pod cgroups under base (relative paths), by uid:
// kubepods[.slice]/pod<uid> or one QoS level deeper.
func pods(base string) (map[string]string, error) {
	out := map[string]string{}
	var top string
	for _, t := range []string{"kubepods.slice", "kubepods"} {
		if st, err := os.Stat(filepath.Join(base, t)); err == nil && st.IsDir() {
			top = t
			break
		}
	}
	if top == "" {
		return out, nil // no pods on this node (or not a kubelet's node)
	}
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		ents, err := os.ReadDir(filepath.Join(base, rel))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			r := filepath.Join(rel, e.Name())
			if uid := podUID(e.Name()); uid != "" {
				out[uid] = r
			} else if depth < 1 {
				if err := walk(r, depth+1); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
		return nil
	}
	return out, walk(top, 0)
}

func (c *containerSet) collect(ctx context.Context, cy *cycle) error {
	k, err := c.kind()
	if err != nil {
		return err
	}
	base := c.root
	if !k.v2 {
		base = k.cpuRoot
		if base == "" {
			base = k.memRoot
		}
	}
	ps, err := pods(base)
	if err != nil {
		return err
	}
	c.c.begin()
	defer c.c.end()
	c.names.begin()
	for uid, rel := range ps {
		ents, _ := os.ReadDir(filepath.Join(base, rel)) // none: the pod went away meanwhile
		var ids, dirs []string
		for _, e := range ents {
			if id := containerID(e.Name()); e.IsDir() && id != "" {
				ids, dirs = append(ids, id), append(dirs, e.Name())
			}
		}
		// Namespace and pod from the Kubernetes metadata, else from the
		// log link of one of the pod's containers; container names from
		// the log links only.
		ns, name := c.podName(ctx, uid)
		ctrNames := make([]string, len(ids))
		for i, id := range ids {
			n, ok := c.names.lookup(id)
			if !ok {
				continue
			}
			ctrNames[i] = n.container
			if ns == "" && name == "" {
				ns, name = n.namespace, n.pod
			}
		}
		if st, ok := c.read(k, rel); ok {
			c.emit(cy, "kubernetes.pod", "kubernetes.pod", &ferryv1.Kubernetes{PodUid: uid, Namespace: ns, Pod: name}, st, "working_set")
		}
		for i, id := range ids {
			if st, ok := c.read(k, filepath.Join(rel, dirs[i])); ok {
				c.emit(cy, "kubernetes.container", "kubernetes.container",
					&ferryv1.Kubernetes{PodUid: uid, ContainerId: id, Namespace: ns, Pod: name, Container: ctrNames[i]}, st, "workingset")
			}
		}
	}
	return nil
}

// emit writes the event of a pod (id "") or container. ws is the working
// set's field name: Metricbeat spells it working_set for pods and
// workingset for containers.
func (c *containerSet) emit(cy *cycle, dataset, prefix string, k *ferryv1.Kubernetes, st cgroupStat, ws string) {
	f := make(map[string]*ferryv1.Value, 12)
	series := k.PodUid + "/" + k.ContainerId
	if st.hasCPU {
		f[prefix+".cpu.usage.core.ns"] = event.Int(int64(st.cpuNs))
		if r, ok := c.c.rate(series, st.cpuNs, cy.t); ok {
			f[prefix+".cpu.usage.nanocores"] = event.Int(int64(r))
			f[prefix+".cpu.usage.node.pct"] = event.Float(r / 1e9 / float64(c.s.cores))
			if st.cpuLimit > 0 {
				f[prefix+".cpu.usage.limit.pct"] = event.Float(r / 1e9 / st.cpuLimit)
			}
		}
	}
	if st.hasMemory {
		wset := st.memUsage - min(st.inactive, st.memUsage)
		f[prefix+".memory.usage.bytes"] = event.Int(int64(st.memUsage))
		f[prefix+".memory."+ws+".bytes"] = event.Int(int64(wset))
		if st.memLimit > 0 {
			f[prefix+".memory.limit.bytes"] = event.Int(int64(st.memLimit))
			f[prefix+".memory.usage.limit.pct"] = event.Float(frac(st.memUsage, st.memLimit))
			f[prefix+".memory."+ws+".limit.pct"] = event.Float(frac(wset, st.memLimit))
		}
	}
	if len(f) == 0 {
		return
	}
	cy.emit(dataset, series, k, f)
}

// podName returns the namespace and name of the pod uid, if the agent's
// Kubernetes metadata knows it.
func (c *containerSet) podName(ctx context.Context, uid string) (namespace, name string) {
	if c.s.cfg.Pods == nil {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, PodLookupTimeout)
	defer cancel()
	p := c.s.cfg.Pods.Pod(ctx, &ferryv1.Kubernetes{PodUid: uid})
	return p.GetNamespace(), p.GetName()
}

// read reads the cgroup at rel; ok is false if it has gone.
func (c *containerSet) read(k cgroupKind, rel string) (st cgroupStat, ok bool) {
	if k.v2 {
		dir := filepath.Join(c.root, rel)
		if kv, err := readKV(filepath.Join(dir, "cpu.stat")); err == nil {
			if us, ok := kv["usage_usec"]; ok {
				st.cpuNs, st.hasCPU = us*1000, true
			}
		}
		st.cpuLimit = cpuMaxV2(filepath.Join(dir, "cpu.max"))
		if u, err := readUint(filepath.Join(dir, "memory.current")); err == nil {
			st.memUsage, st.hasMemory = u, true
			if kv, err := readKV(filepath.Join(dir, "memory.stat")); err == nil {
				st.inactive = kv["inactive_file"]
			}
			if l, err := readUint(filepath.Join(dir, "memory.max")); err == nil {
				st.memLimit = l // "max" fails to parse: no limit
			}
		}
		return st, st.hasCPU || st.hasMemory
	}
	if k.cpuRoot != "" {
		if ns, err := readUint(filepath.Join(k.cpuRoot, rel, "cpuacct.usage")); err == nil {
			st.cpuNs, st.hasCPU = ns, true
			dir := filepath.Join(k.quotaRoot, rel)
			q, qerr := readInt(filepath.Join(dir, "cpu.cfs_quota_us"))
			p, perr := readInt(filepath.Join(dir, "cpu.cfs_period_us"))
			if qerr == nil && perr == nil && q > 0 && p > 0 {
				st.cpuLimit = float64(q) / float64(p)
			}
		}
	}
	if k.memRoot != "" {
		dir := filepath.Join(k.memRoot, rel)
		if u, err := readUint(filepath.Join(dir, "memory.usage_in_bytes")); err == nil {
			st.memUsage, st.hasMemory = u, true
			if kv, err := readKV(filepath.Join(dir, "memory.stat")); err == nil {
				if v, ok := kv["total_inactive_file"]; ok {
					st.inactive = v
				} else {
					st.inactive = kv["inactive_file"]
				}
			}
			// v1 says "no limit" with a huge number (the page-rounded
			// maximum); anything beyond 2^62 is that.
			if l, err := readUint(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && l < 1<<62 {
				st.memLimit = l
			}
		}
	}
	return st, st.hasCPU || st.hasMemory
}

// cpuMaxV2 reads cgroup v2's cpu.max ("max 100000" or "<quota> <period>")
// as cores; 0 when there is no limit.
func cpuMaxV2(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	fs := strings.Fields(string(b))
	if len(fs) != 2 || fs[0] == "max" {
		return 0
	}
	q, err1 := strconv.ParseFloat(fs[0], 64)
	p, err2 := strconv.ParseFloat(fs[1], 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readKV reads a flat keyed file ("key value" per line: cpu.stat,
// memory.stat).
func readKV(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, sc.Err()
}
