package metrics

import (
	"os"
	"path/filepath"
	"strings"
)

// logNames names containers by id from the kubelet's log links,
// <host_root>/var/log/containers/<pod>_<namespace>_<container>-<id>.log
// (the names the container inputs read too): a container's cgroup tells
// its id only. The directory is read again, at most once a cycle, when a
// cycle meets an id it does not know (a new container; a container without
// logs, such as a pod's sandbox, stays unknown).
type logNames struct {
	dir  string
	m    map[string]containerName
	read bool // read during this cycle
}

type containerName struct{ namespace, pod, container string }

func (l *logNames) begin() { l.read = false }

// lookup returns the names of container id, if its log link is there.
func (l *logNames) lookup(id string) (containerName, bool) {
	if n, ok := l.m[id]; ok {
		return n, true
	}
	if l.read {
		return containerName{}, false
	}
	l.read = true
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return containerName{}, false // no such directory: not a kubelet's node
	}
	m := make(map[string]containerName, len(ents))
	for _, e := range ents {
		if cid, n, ok := parseLogName(e.Name()); ok {
			m[cid] = n
		}
	}
	l.m = m
	n, ok := m[id]
	return n, ok
}

// parseLogName splits <pod>_<namespace>_<container>-<id>.log.
func parseLogName(name string) (id string, n containerName, ok bool) {
	base, found := strings.CutSuffix(name, ".log")
	parts := strings.SplitN(base, "_", 3)
	if !found || len(parts) != 3 {
		return "", n, false
	}
	i := strings.LastIndexByte(parts[2], '-')
	if i <= 0 || !hexID.MatchString(parts[2][i+1:]) {
		return "", n, false
	}
	return parts[2][i+1:], containerName{namespace: parts[1], pod: parts[0], container: parts[2][:i]}, true
}

func newLogNames(hostRoot string) *logNames {
	return &logNames{dir: filepath.Join(hostRoot, "/var/log/containers")}
}
