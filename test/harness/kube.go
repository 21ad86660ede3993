package harness

// A real Kubernetes API server for the tests (test/kube-apiserver.sh):
// namespaces, service accounts, pods with owners written by hand and
// spec.nodeName set, RBAC for the agent's users, an outage, and the pods'
// log files laid out as the kubelet does. Plain REST with JSON: only the
// agent (pipeline/kube) uses client-go.

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// KubeAPI is a kube-apiserver the tests talk to as its admin.
type KubeAPI struct {
	URL        string
	Token      string // the admin's bearer token
	Kubeconfig string // the admin's kubeconfig
	// env runs the script on this instance (a private one's state and ports).
	env  []string
	http *http.Client
}

func kubeScriptPath() (string, error) {
	p, err := esScriptPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "kube-apiserver.sh"), nil
}

func kubeScript(env []string, args ...string) ([]byte, error) {
	script, err := kubeScriptPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kube-apiserver.sh %s: %v\n%s%s", strings.Join(args, " "), err, out.Bytes(), stderr.Bytes())
	}
	return bytes.TrimSpace(out.Bytes()), nil
}

var sharedKube struct {
	once sync.Once
	api  *KubeAPI
	err  error
}

// SharedKube returns the shared API server: the one whose admin kubeconfig
// is $FERRY_KUBE_ADMIN_KUBECONFIG (set by `make test`), else one started
// here with test/kube-apiserver.sh (left running; `bash
// test/kube-apiserver.sh stop` stops it).
func SharedKube(tb testing.TB) *KubeAPI {
	tb.Helper()
	sharedKube.once.Do(func() {
		path := os.Getenv("FERRY_KUBE_ADMIN_KUBECONFIG")
		if path == "" {
			if _, err := kubeScript(nil, "start"); err != nil {
				sharedKube.err = fmt.Errorf("FERRY_KUBE_ADMIN_KUBECONFIG is unset and %v", err)
				return
			}
			out, err := kubeScript(nil, "kubeconfig", "admin")
			if err != nil {
				sharedKube.err = err
				return
			}
			path = string(out)
		}
		sharedKube.api, sharedKube.err = openKube(path, nil)
	})
	if sharedKube.err != nil {
		tb.Fatal(sharedKube.err)
	}
	return sharedKube.api
}

// StartPrivateKube starts an API server of the test's own (its own etcd,
// ports and state), for a test that stops it; it is stopped at cleanup.
func StartPrivateKube(tb testing.TB) *KubeAPI {
	tb.Helper()
	dir, err := os.MkdirTemp("", "ferry-kube-private-")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(FreePort(tb))
	_, etcd, _ := net.SplitHostPort(FreePort(tb))
	env := []string{"FERRY_KUBE_STATE_DIR=" + dir, "FERRY_KUBE_PORT=" + port, "FERRY_KUBE_ETCD_PORT=" + etcd}
	tb.Cleanup(func() {
		if _, err := kubeScript(env, "stop"); err != nil {
			tb.Error(err)
		}
		os.RemoveAll(dir)
	})
	if _, err := kubeScript(env, "start"); err != nil {
		tb.Fatal(err)
	}
	out, err := kubeScript(env, "kubeconfig", "admin")
	if err != nil {
		tb.Fatal(err)
	}
	api, err := openKube(string(out), env)
	if err != nil {
		tb.Fatal(err)
	}
	return api
}

// OpenKube returns the API server of the admin kubeconfig at path (server
// and token), for programs outside tests such as test/benche2e.
func OpenKube(path string) (*KubeAPI, error) { return openKube(path, nil) }

// openKube reads server and token of the kubeconfig at path.
func openKube(path string, env []string) (*KubeAPI, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Token string `yaml:"token"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 || kc.Users[0].User.Token == "" {
		return nil, fmt.Errorf("kubeconfig %s: no server or token", path)
	}
	return &KubeAPI{
		URL: kc.Clusters[0].Cluster.Server, Token: kc.Users[0].User.Token, Kubeconfig: path, env: env,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}, nil
}

// KubeconfigOf returns the kubeconfig of user "agent" or "limited" (no
// permissions until Grant gives some).
func (k *KubeAPI) KubeconfigOf(user string) string {
	return filepath.Join(filepath.Dir(k.Kubeconfig), "kubeconfig-"+user)
}

// UserOf returns the Kubernetes user name of "agent" or "limited".
func UserOf(user string) string { return "ferry-" + user }

// Do sends a request as the admin; body is JSON-encoded unless it is nil,
// and out, if not nil, receives the JSON answer.
func (k *KubeAPI) Do(method, path, contentType string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, k.URL+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+k.Token)
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	res, err := k.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		return res.StatusCode, json.Unmarshal(b, out)
	}
	return res.StatusCode, nil
}

// Must is Do; the test fails on an error, except a 409 (already there)
// when okConflict.
func (k *KubeAPI) Must(tb testing.TB, method, path string, body, out any, okConflict bool) {
	tb.Helper()
	ct := ""
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	if code, err := k.Do(method, path, ct, body, out); err != nil && !(okConflict && code == http.StatusConflict) {
		tb.Fatal(err)
	}
}

// CreateNamespace creates namespace name with labels and its default
// ServiceAccount (no controller-manager makes it here).
func (k *KubeAPI) CreateNamespace(tb testing.TB, name string, labels map[string]string) {
	tb.Helper()
	k.Must(tb, http.MethodPost, "/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}, nil, false)
	k.Must(tb, http.MethodPost, "/api/v1/namespaces/"+name+"/serviceaccounts", map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "default"}}, nil, true)
	tb.Cleanup(func() { _, _ = k.Do(http.MethodDelete, "/api/v1/namespaces/"+name, "", nil, nil) })
}

// KubePod is a pod as the tests create it: bound to Node by hand, owned by
// OwnerKind/OwnerName when set (the owner need not exist), one container
// "app".
type KubePod struct {
	NS, Name, Node       string
	Labels, Annotations  map[string]string
	OwnerKind, OwnerName string
	Image                string // default registry.example/app:1
}

// CreatePod creates p and returns its uid.
func (k *KubeAPI) CreatePod(tb testing.TB, p KubePod) string {
	tb.Helper()
	meta := map[string]any{"name": p.Name, "namespace": p.NS, "labels": p.Labels, "annotations": p.Annotations}
	if p.OwnerKind != "" {
		api := "apps/v1"
		if p.OwnerKind == "Job" || p.OwnerKind == "CronJob" {
			api = "batch/v1"
		}
		meta["ownerReferences"] = []map[string]any{{"apiVersion": api, "kind": p.OwnerKind, "name": p.OwnerName, "uid": randomUID(), "controller": true}}
	}
	if p.Image == "" {
		p.Image = "registry.example/app:1"
	}
	var out struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	k.Must(tb, http.MethodPost, "/api/v1/namespaces/"+p.NS+"/pods", map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": meta,
		"spec": map[string]any{"nodeName": p.Node, "containers": []map[string]any{{"name": "app", "image": p.Image}}},
	}, &out, false)
	return out.Metadata.UID
}

// PatchPodLabels sets (merges) labels of a pod.
func (k *KubeAPI) PatchPodLabels(tb testing.TB, ns, name string, labels map[string]string) {
	tb.Helper()
	k.Must(tb, http.MethodPatch, "/api/v1/namespaces/"+ns+"/pods/"+name, map[string]any{"metadata": map[string]any{"labels": labels}}, nil, false)
}

// ForceDeletePod deletes a pod with grace period 0: without a kubelet, the
// only delete that completes.
func (k *KubeAPI) ForceDeletePod(tb testing.TB, ns, name string) {
	tb.Helper()
	k.Must(tb, http.MethodDelete, "/api/v1/namespaces/"+ns+"/pods/"+name, map[string]any{"gracePeriodSeconds": 0}, nil, false)
}

// Grant lets user (UserOf) get, list and watch resources (of the core
// group) cluster-wide, through a ClusterRole and its binding named name.
func (k *KubeAPI) Grant(tb testing.TB, name, user string, resources ...string) {
	tb.Helper()
	k.Must(tb, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterroles", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": name},
		"rules": []map[string]any{{"apiGroups": []string{""}, "resources": resources, "verbs": []string{"get", "list", "watch"}}},
	}, nil, true)
	k.Must(tb, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": name},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
		"subjects": []map[string]any{{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": UserOf(user)}},
	}, nil, true)
}

// StopAPIServer stops the kube-apiserver of a private instance (etcd and
// the data stay); StartAPIServer starts it again on the same port.
func (k *KubeAPI) StopAPIServer(tb testing.TB) {
	tb.Helper()
	if k.env == nil {
		tb.Fatal("StopAPIServer on the shared API server")
	}
	if _, err := kubeScript(k.env, "apiserver-stop"); err != nil {
		tb.Fatal(err)
	}
}

// StartAPIServer: see StopAPIServer.
func (k *KubeAPI) StartAPIServer(tb testing.TB) {
	tb.Helper()
	if _, err := kubeScript(k.env, "apiserver-start"); err != nil {
		tb.Fatal(err)
	}
}

// RequestsTotal returns the sum of apiserver_request_total (every request
// the API server answered since it started) from its /metrics.
func (k *KubeAPI) RequestsTotal() (float64, error) {
	req, err := http.NewRequest(http.MethodGet, k.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+k.Token)
	res, err := k.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, errors.New("no apiserver_request_total in /metrics")
	}
	return sum, nil
}

// NewKubePodFile creates the log file of container "app" of a pod as the
// kubelet lays it out under root (see NodeRoot):
// pods/<ns>_<pod>_<uid>/app/0.log and the link containers/<pod>_<ns>_app-<id>.log.
// Lines written with Write carry file number n (see Line).
func NewKubePodFile(tb testing.TB, root, ns, pod, uid string, n int) *PodFile {
	tb.Helper()
	p := &PodFile{NS: ns, Pod: pod, UID: uid, Container: "app", ID: fmt.Sprintf("%064x", n+1)}
	dir := filepath.Join(root, "pods", ns+"_"+pod+"_"+uid, p.Container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	p.Real = filepath.Join(dir, "0.log")
	p.Link = filepath.Join(root, "containers", fmt.Sprintf("%s_%s_%s-%s.log", pod, ns, p.Container, p.ID))
	if err := p.open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	if err := os.Symlink(p.Real, p.Link); err != nil {
		tb.Fatal(err)
	}
	return p
}

func randomUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
