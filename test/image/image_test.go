// Package image checks Ferry's container image as `make image` writes it:
// an OCI image layout read back with the standard library only (not with the
// go-containerregistry code that wrote it), its blobs verified, its config
// (user, command, platform, labels) checked, and the binaries extracted from
// the layer and run.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// repoRoot is the repository, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// appVersion is the chart's appVersion, the image's tag.
func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "charts/ferry/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return string(m[1])
}

// layoutDir is FERRY_IMAGE_LAYOUT (set by `make image`) or, without it, a
// layout built here the way `make image` builds it.
func layoutDir(t *testing.T) string {
	root := repoRoot(t)
	if dir := os.Getenv("FERRY_IMAGE_LAYOUT"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		return dir
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "root")
	for _, name := range []string{"agent", "aggregator"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(bin, name), "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	out := filepath.Join(tmp, "image")
	cmd := exec.Command("go", "-C", filepath.Join(root, "tools/image"), "run", ".",
		"-bin", bin, "-out", out, "-version", appVersion(t), "-arch", runtime.GOARCH, "-revision", "test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tools/image: %v\n%s", err, b)
	}
	return out
}

// blob reads a blob of the layout and checks it against its digest and size.
func blob(t *testing.T, dir string, d descriptor) []byte {
	t.Helper()
	algo, hexsum, ok := strings.Cut(d.Digest, ":")
	if !ok || algo != "sha256" {
		t.Fatalf("digest %q: want sha256:<hex>", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(dir, "blobs", algo, hexsum))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexsum {
		t.Fatalf("blob %s: content hashes to %x", d.Digest, sum)
	}
	if int64(len(b)) != d.Size {
		t.Fatalf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
	}
	return b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func TestImageLayout(t *testing.T) {
	dir := layoutDir(t)
	version := appVersion(t)

	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	var ol struct {
		Version string `json:"imageLayoutVersion"`
	}
	decode(t, b, &ol)
	if ol.Version != "1.0.0" {
		t.Fatalf("oci-layout version %q", ol.Version)
	}

	b, err = os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		Manifests     []descriptor `json:"manifests"`
	}
	decode(t, b, &index)
	if index.SchemaVersion != 2 || len(index.Manifests) != 1 {
		t.Fatalf("index.json: schemaVersion %d, %d manifests; want 2 and 1", index.SchemaVersion, len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %q", md.MediaType)
	}
	if got := md.Annotations["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("ref.name %q, want the chart's appVersion %q", got, version)
	}
	if got := md.Annotations["io.containerd.image.name"]; got != "ghcr.io/ferrylogs/ferry:"+version {
		t.Errorf("image name %q, want the chart's default image ghcr.io/ferrylogs/ferry:%s", got, version)
	}
	if md.Platform == nil || md.Platform.OS != "linux" || md.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index platform %+v, want linux/%s", md.Platform, runtime.GOARCH)
	}

	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	decode(t, blob(t, dir, md), &manifest)
	if manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config media type %q", manifest.Config.MediaType)
	}
	var cfg imageConfig
	decode(t, blob(t, dir, manifest.Config), &cfg)
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("config platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cfg.Config.User)
	}
	if len(cfg.Config.Entrypoint) != 0 || strings.Join(cfg.Config.Cmd, " ") != "/agent --help" {
		t.Errorf("entrypoint %q cmd %q, want no entrypoint and cmd /agent --help", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.source":  "https://github.com/ferrylogs/ferry",
		"org.opencontainers.image.title":   "ferry",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if len(manifest.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff_ids; want 1 and 1", len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}

	ld := manifest.Layers[0]
	if ld.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("layer media type %q", ld.MediaType)
	}
	compressed := blob(t, dir, ld)
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != cfg.RootFS.DiffIDs[0] {
		t.Errorf("diff_id %s, uncompressed layer hashes to %x", cfg.RootFS.DiffIDs[0], sum)
	}

	root := t.TempDir()
	files := extract(t, raw, root)
	for _, name := range []string{"agent", "aggregator"} {
		h, ok := files[name]
		if !ok {
			t.Fatalf("layer has no /%s (has %v)", name, keys(files))
		}
		if h.Mode&0o777 != 0o755 || h.Uid != 0 {
			t.Errorf("/%s: mode %o uid %d, want 755 owned by root (the non-root user cannot replace it)", name, h.Mode, h.Uid)
		}
		f, err := elf.Open(filepath.Join(root, name))
		if err != nil {
			t.Fatalf("/%s: %v", name, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("/%s is dynamically linked (%v): a scratch image has no libc", name, p.Type)
			}
		}
		f.Close()
	}
	for _, name := range []string{"etc/passwd", "etc/ssl/certs/ca-certificates.crt", "tmp"} {
		if _, ok := files[name]; !ok {
			t.Errorf("layer has no /%s", name)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(b), ":65532:65532:") {
		t.Errorf("/etc/passwd names no user 65532:\n%s", b)
	}

	// The binaries run: usage on --help, and validate on a configuration.
	out, _ := exec.Command(filepath.Join(root, "agent"), "--help").CombinedOutput()
	if !strings.Contains(string(out), "usage: agent") {
		t.Errorf("/agent --help printed %q", out)
	}
	conf := filepath.Join(t.TempDir(), "aggregator.yaml")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:0\nsinks:\n  - type: stdout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(root, "aggregator"), "validate", "--config", conf).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("/aggregator validate: %v: %s", err, out)
	}

	var total int64
	for _, d := range append([]descriptor{md, manifest.Config}, manifest.Layers...) {
		total += d.Size
	}
	t.Logf("image %s:%s: %d bytes compressed (layer %d), %d bytes uncompressed", "ghcr.io/ferrylogs/ferry", version, total, ld.Size, len(raw))
}

// extract writes the layer's regular files and directories under root and
// returns their headers by path.
func extract(t *testing.T, layer []byte, root string) map[string]*tar.Header {
	t.Helper()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Clean("/"+h.Name), "/"), "/")
		files[name] = h
		p := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("layer entry %s: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}

func keys(m map[string]*tar.Header) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return fmt.Sprint(s)
}
