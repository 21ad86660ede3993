package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"time"
)

// Metrics is what the agent samples of its node and its containers and how
// often (see pipeline/metrics).
type Metrics struct {
	Enabled  bool     `yaml:"enabled"`  // default false
	Interval Duration `yaml:"interval"` // >= 1s, default 10s; samples are aligned to it
	// HostRoot is where the host's / is mounted when the agent runs in a
	// container (its proc, sys and mount points are read below it); empty:
	// this machine's own.
	HostRoot string   `yaml:"host_root"`
	Sets     []string `yaml:"sets"` // default DefaultMetricSets; "core" (per-core CPU) is the one more
	// CgroupRoot is the cgroup hierarchy of the containers set; empty:
	// <host_root>/sys/fs/cgroup.
	CgroupRoot        string   `yaml:"cgroup_root"`
	ExcludeMountTypes []string `yaml:"exclude_mount_types"` // filesystem types left out; default DefaultExcludeMountTypes
	ExcludeInterfaces []string `yaml:"exclude_interfaces"`  // regular expressions; default ^lo$, ^veth, ^cali
	// Environment is the data stream namespace of node metrics, default
	// "default" (container metrics get their pod's environment).
	Environment string `yaml:"environment"`
}

// MetricSets lists every metric set the agent knows.
var MetricSets = []string{"cpu", "core", "load", "memory", "swap", "filesystem", "diskio", "network", "uptime", "containers"}

// DefaultMetricSets are the sets sampled when metrics.sets is not given.
var DefaultMetricSets = []string{"cpu", "load", "memory", "swap", "filesystem", "diskio", "network", "uptime", "containers"}

// DefaultExcludeMountTypes are the pseudo and overlay filesystems the
// filesystem set leaves out by default.
var DefaultExcludeMountTypes = []string{
	"tmpfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2", "nsfs", "devtmpfs", "devpts", "mqueue",
	"debugfs", "tracefs", "securityfs", "pstore", "bpf", "autofs", "configfs", "fusectl", "hugetlbfs",
	"rpc_pipefs", "binfmt_misc", "ramfs", "efivarfs", "selinuxfs", "squashfs", "fuse.lxcfs", "nfsd",
}

// DefaultExcludeInterfaces are the network interfaces left out by default:
// loopback and the host ends of pod interfaces.
var DefaultExcludeInterfaces = []string{`^lo$`, `^veth`, `^cali`}

// MinMetricsInterval is the shortest metrics.interval.
const MinMetricsInterval = Duration(time.Second)

// DefaultMetrics returns the metrics block's defaults (sampling off).
func DefaultMetrics() Metrics {
	return Metrics{
		Interval:          Duration(10 * time.Second),
		Sets:              slices.Clone(DefaultMetricSets),
		ExcludeMountTypes: slices.Clone(DefaultExcludeMountTypes),
		ExcludeInterfaces: slices.Clone(DefaultExcludeInterfaces),
		Environment:       "default",
	}
}

func (d *decoder) validateMetrics(p string, m Metrics) {
	d.atLeast(p+".interval", m.Interval, MinMetricsInterval)
	if len(m.Sets) == 0 && m.Enabled {
		d.invalid(p+".sets", "must not be empty when metrics are enabled")
	}
	seen := map[string]bool{}
	for i, s := range m.Sets {
		sp := fmt.Sprintf("%s.sets[%d]", p, i)
		if d.oneOf(sp, s, MetricSets...) && seen[s] {
			d.invalid(sp, "%s given twice", s)
		}
		seen[s] = true
	}
	for _, r := range []struct{ key, dir string }{{"host_root", m.HostRoot}, {"cgroup_root", m.CgroupRoot}} {
		if r.dir == "" || !m.Enabled {
			continue
		}
		if st, err := os.Stat(r.dir); err != nil {
			d.fileProblem(p+"."+r.key, err, "%v", err)
		} else if !st.IsDir() {
			d.invalid(p+"."+r.key, "%s is not a directory", r.dir)
		}
	}
	for i, t := range m.ExcludeMountTypes {
		d.nonEmpty(fmt.Sprintf("%s.exclude_mount_types[%d]", p, i), t)
	}
	for i, re := range m.ExcludeInterfaces {
		if _, err := regexp.Compile(re); err != nil {
			d.invalid(fmt.Sprintf("%s.exclude_interfaces[%d]", p, i), "%v", err)
		}
	}
	d.indexName(p+".environment", m.Environment, 100, "-")
}
