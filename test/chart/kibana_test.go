package chart

import (
	"bufio"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferrylogs/ferry/test/harness"
)

// kibanaJob renders args and returns the Kibana import Job.
func kibanaJob(t *testing.T, args ...string) obj {
	t.Helper()
	return find(t, mustRender(t, args...), "Job", "ferry-kibana-import")
}

// TestKibanaImportJob: the optional Kibana import is a post-install and
// post-upgrade hook Job, deleted before the next one and once it
// succeeded, with a backoff limit, running `aggregator kibana import` from
// the chart's image as a non-root user with a read-only root filesystem,
// no capabilities, no service account token and bounded resources; the
// credentials come from the existing Secret as files (the user name as an
// environment variable from it), never as literals. Off by default; on
// without kibana.url it fails the render.
func TestKibanaImportJob(t *testing.T) {
	if has(quickstart(t), "Job") {
		t.Error("a Job is rendered with kibana.import off")
	}
	if _, err := render(t, "-f", scenarios(t)["quickstart"], "--set", "kibana.import.enabled=true"); err == nil || !strings.Contains(err.Error(), "kibana.url") {
		t.Errorf("kibana.import.enabled without kibana.url: %v", err)
	}
	for _, set := range []string{"kibana.import.enable=true", "kibana.auth=token", "kibana.url=kibana:5601", "kibana.password=x"} {
		if _, err := render(t, "-f", scenarios(t)["quickstart"], "--set", set); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("--set %s: want a schema error, got %v", set, err)
		}
	}

	objs := mustRender(t, "-f", scenarios(t)["kibana-import"])
	job := find(t, objs, "Job", "ferry-kibana-import")
	ann := at(job, "metadata", "annotations")
	if str(ann, "helm.sh/hook") != "post-install,post-upgrade" || str(ann, "helm.sh/hook-delete-policy") != "before-hook-creation,hook-succeeded" {
		t.Errorf("hook annotations %v", ann)
	}
	if at(job, "spec", "backoffLimit") != 4.0 {
		t.Errorf("backoffLimit %v, want 4", at(job, "spec", "backoffLimit"))
	}
	spec := podSpec(job)
	if str(spec, "restartPolicy") != "Never" || at(spec, "automountServiceAccountToken") != false {
		t.Errorf("pod spec restartPolicy %v, automountServiceAccountToken %v", spec["restartPolicy"], spec["automountServiceAccountToken"])
	}
	// fsGroup: the Secret's files are mode 0440, readable through the group only.
	if at(spec, "securityContext", "runAsNonRoot") != true || at(spec, "securityContext", "runAsUser") != 65532.0 || at(spec, "securityContext", "fsGroup") != 65532.0 {
		t.Errorf("pod securityContext %v: want non-root 65532 with fsGroup 65532", at(spec, "securityContext"))
	}
	c := container(t, spec, "kibana-import")
	sc := at(c, "securityContext")
	if at(sc, "readOnlyRootFilesystem") != true || at(sc, "allowPrivilegeEscalation") != false || !slices.Equal(strs(sc, "capabilities", "drop"), []string{"ALL"}) || at(sc, "capabilities", "add") != nil {
		t.Errorf("container securityContext %v", sc)
	}
	if str(c, "resources", "limits", "memory") == "" || str(c, "resources", "requests", "cpu") == "" {
		t.Errorf("resources %v: want requests and a memory limit", at(c, "resources"))
	}
	agg := container(t, podSpec(find(t, objs, "Deployment", "ferry-aggregator")), "aggregator")
	if str(c, "image") != str(agg, "image") {
		t.Errorf("Job image %s, aggregator's %s: want Ferry's own", str(c, "image"), str(agg, "image"))
	}
	want := []string{"/aggregator", "kibana", "import", "--url=https://kibana:5601", "--timeout=60s", "--space=ops",
		"--username=$(KIBANA_USERNAME)", "--password-file=/etc/ferry/secrets/kibana/password", "--ca-file=/etc/ferry/secrets/kibana-ca/ca.crt"}
	if got := strs(c, "command"); !slices.Equal(got, want) {
		t.Errorf("command %q, want %q", got, want)
	}
	if e := list(c, "env"); len(e) != 1 || str(e[0], "name") != "KIBANA_USERNAME" || str(e[0], "valueFrom", "secretKeyRef", "name") != "kibana-credentials" || str(e[0], "valueFrom", "secretKeyRef", "key") != "username" {
		t.Errorf("env %v: want KIBANA_USERNAME from the Secret", e)
	}
	vols := map[string]any{}
	for _, v := range list(spec, "volumes") {
		vols[str(v, "name")] = v
	}
	if str(vols["kibana-credentials"], "secret", "secretName") != "kibana-credentials" || str(vols["kibana-credentials"], "secret", "items", 0, "key") != "password" ||
		str(vols["kibana-ca"], "secret", "secretName") != "kibana-ca" {
		t.Errorf("volumes %v", vols)
	}
	for _, m := range list(c, "volumeMounts") {
		if at(m, "readOnly") != true {
			t.Errorf("mount %v is writable", m)
		}
	}

	// An API key instead: its file, no user name.
	k := container(t, podSpec(kibanaJob(t, "-f", scenarios(t)["kibana-import"], "--set", "kibana.auth=api_key")), "kibana-import")
	cmd := strs(k, "command")
	if !slices.Contains(cmd, "--api-key-file=/etc/ferry/secrets/kibana/api_key") || slices.ContainsFunc(cmd, func(a string) bool { return strings.HasPrefix(a, "--username") || strings.HasPrefix(a, "--password") }) || len(list(k, "env")) != 0 {
		t.Errorf("api_key: command %q env %v", cmd, list(k, "env"))
	}
}

// fakeKibana answers the saved-objects import API as Kibana does: success
// for every object of the NDJSON, or, with fail, an error for the first.
// It records the requests' paths and credentials.
type fakeKibana struct {
	fail bool

	mu    sync.Mutex
	calls []string // "path?query user:password"
}

func (k *fakeKibana) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pw, _ := r.BasicAuth()
	k.mu.Lock()
	k.calls = append(k.calls, r.URL.Path+"?"+r.URL.RawQuery+" "+user+":"+pw)
	k.mu.Unlock()
	f, _, err := r.FormFile("file")
	if err != nil || r.Header.Get("kbn-xsrf") == "" {
		http.Error(w, `{"statusCode":400,"error":"Bad Request","message":"no file or kbn-xsrf"}`, http.StatusBadRequest)
		return
	}
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			ids = append(ids, fmt.Sprint(len(ids)))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if k.fail {
		fmt.Fprintf(w, `{"success":false,"successCount":%d,"errors":[{"id":"ferry-logs","type":"index-pattern","title":"ferry-logs","error":{"type":"conflict"}}]}`, len(ids)-1)
		return
	}
	fmt.Fprintf(w, `{"success":true,"successCount":%d}`, len(ids))
}

// TestKibanaImportJobRuns runs the command the Job renders with the real
// aggregator binary, as the kubelet would (the Secret's files at their
// mount paths, $(KIBANA_USERNAME) expanded from the Secret's username),
// against a fake Kibana over TLS with the CA from kibana.caSecret: the
// import reaches the space's import API with overwrite=true and the
// Secret's credentials and exits 0; when Kibana refuses an object, it
// exits non-zero (so the Job, and the release, fail).
func TestKibanaImportJobRuns(t *testing.T) {
	bin := harness.BinDir(t)
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			k := &fakeKibana{fail: fail}
			srv := httptest.NewTLSServer(k)
			defer srv.Close()
			dir := t.TempDir()
			files := map[string]string{
				"kibana/password":  "s3cret\n",
				"kibana-ca/ca.crt": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})),
			}
			for f, content := range files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := container(t, podSpec(kibanaJob(t, "-f", scenarios(t)["kibana-import"], "--set", "kibana.url="+srv.URL)), "kibana-import")
			args := strs(c, "command")
			kubelet := strings.NewReplacer("/etc/ferry/secrets/", dir+"/", "$(KIBANA_USERNAME)", "elastic")
			for i := range args {
				args[i] = kubelet.Replace(args[i])
			}
			if args[0] != "/aggregator" {
				t.Fatalf("command %q does not start with /aggregator", args)
			}
			cmd := exec.Command(filepath.Join(bin, "aggregator"), args[1:]...)
			out, err := cmd.CombinedOutput()
			k.mu.Lock()
			calls := slices.Clone(k.calls)
			k.mu.Unlock()
			if want := []string{"/s/ops/api/saved_objects/_import?overwrite=true elastic:s3cret"}; !slices.Equal(calls, want) {
				t.Errorf("Kibana saw %q, want %q\n%s", calls, want, out)
			}
			if fail != (err != nil) {
				t.Errorf("import with Kibana refusing=%v: exit %v\n%s", fail, err, out)
			}
			if fail && !strings.Contains(string(out), "ferry-logs") {
				t.Errorf("failed import does not name the object:\n%s", out)
			}
		})
	}
}

// TestKibanaImportJobAccepted creates the Job the kibana-import scenario
// renders in a real kube-apiserver (no controllers run there, so helm
// install would wait for the hook for ever: the Job is created directly)
// and reads it back: the API server takes every field as rendered.
func TestKibanaImportJobAccepted(t *testing.T) {
	api := harness.SharedKube(t)
	ns := "chart-kibana-" + suffix(t)
	api.Must(t, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}, nil, true)
	t.Cleanup(func() { api.Do(http.MethodDelete, "/api/v1/namespaces/"+ns, "", nil, nil) })
	out, err := render(t, "-f", scenarios(t)["kibana-import"], "--show-only", "templates/kibana-import-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := parse(t, out)
	if len(objs) != 1 || objs[0].kind() != "Job" {
		t.Fatalf("rendered %d objects, want the Job", len(objs))
	}
	api.Must(t, http.MethodPost, "/apis/batch/v1/namespaces/"+ns+"/jobs", map[string]any(objs[0]), nil, true)
	var got obj
	if _, err := api.Do(http.MethodGet, "/apis/batch/v1/namespaces/"+ns+"/jobs/"+objs[0].name(), "", nil, &got); err != nil {
		t.Fatal(err)
	}
	for _, d := range subset(map[string]any(objs[0]), map[string]any(got), "Job/"+objs[0].name()) {
		t.Errorf("API server changed or dropped %s", d)
	}
}
