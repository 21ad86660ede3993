// Command image assembles Ferry's container image without a container
// daemon: one layer holding the static agent and aggregator binaries, the
// CA bundle and a non-root user (65532), appended onto an empty base with
// go-containerregistry, written as an OCI image layout. It is the daemonless
// twin of the repository's Dockerfile (`make image`).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uid is the non-root user the image runs as (distroless' "nonroot").
const uid = 65532

type options struct {
	binDir   string // holds agent and aggregator, static linux binaries
	caBundle string // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt; "" for none
	out      string // OCI layout directory, replaced
	repo     string // image repository, recorded in the ref.name annotation
	version  string // image tag and org.opencontainers.image.version
	revision string // VCS revision, org.opencontainers.image.revision; may be ""
	arch     string
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", "", "directory holding the static agent and aggregator binaries")
	flag.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for the image (\"\" for none)")
	flag.StringVar(&o.out, "out", "", "OCI image layout directory to write (replaced)")
	flag.StringVar(&o.repo, "repo", "ghcr.io/ferrylogs/ferry", "image repository")
	flag.StringVar(&o.version, "version", "", "image version (the chart's appVersion)")
	flag.StringVar(&o.revision, "revision", "", "source revision (git commit)")
	flag.StringVar(&o.arch, "arch", "amd64", "architecture of the binaries")
	flag.Parse()
	if o.binDir == "" || o.out == "" || o.version == "" {
		fmt.Fprintln(os.Stderr, "usage: image -bin DIR -out DIR -version V [-repo R] [-revision SHA] [-arch A] [-ca-bundle FILE]")
		os.Exit(2)
	}
	if err := build(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(o options) error {
	layer, err := rootLayer(o)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	labels := map[string]string{
		"org.opencontainers.image.title":       "ferry",
		"org.opencontainers.image.description": "Ferry log pipeline: /agent and /aggregator",
		"org.opencontainers.image.source":      "https://github.com/ferrylogs/ferry",
		"org.opencontainers.image.version":     o.version,
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	cf.Config = v1.Config{
		// Two binaries, no default program: the chart (and `docker run IMAGE
		// /aggregator ...`) names the one to run; alone the image prints the
		// agent's usage.
		Cmd:        []string{"/agent", "--help"},
		User:       fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir: "/",
		Env: []string{
			"PATH=/",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
		Labels: labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	// A fixed creation time: the same binaries give the same image digest.
	if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()}); err != nil {
		return fmt.Errorf("set created: %w", err)
	}
	if err := os.RemoveAll(o.out); err != nil {
		return err
	}
	p, err := layout.Write(o.out, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout %s: %w", o.out, err)
	}
	ann := map[string]string{
		"org.opencontainers.image.ref.name":  o.version,
		"io.containerd.image.name":           o.repo + ":" + o.version,
		"org.opencontainers.image.base.name": "scratch",
	}
	if err := p.AppendImage(img, layout.WithAnnotations(ann), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: o.arch})); err != nil {
		return fmt.Errorf("write image to %s: %w", o.out, err)
	}
	return nil
}

// rootLayer is the image's only layer: /agent, /aggregator, the CA bundle,
// /etc/passwd and /etc/group naming the nonroot user, and a writable /tmp.
func rootLayer(o options) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)
	if err := file("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	if o.caBundle != "" {
		ca, err := os.ReadFile(o.caBundle)
		if err != nil {
			return nil, err
		}
		if err := file("etc/ssl/certs/ca-certificates.crt", 0o644, ca); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"agent", "aggregator"} {
		data, err := os.ReadFile(filepath.Join(o.binDir, name))
		if err != nil {
			return nil, err
		}
		if err := file(name, 0o755, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return layer, nil
}
