package config

import (
	"reflect"
	"testing"
)

func TestChanged(t *testing.T) {
	base := `
log: {level: info}
aggregator:
  address: 127.0.0.1:7070
  batch_max_bytes: 1MiB
  bearer_token: s3cret-token-a
  tls: {enabled: true}
inputs:
  - type: container
    paths: ["/a/*.log"]
`
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"same", base, nil},
		{"level, batch size and a path", `
log: {level: debug}
aggregator:
  address: 127.0.0.1:7070
  batch_max_bytes: 2MiB
  bearer_token: s3cret-token-a
  tls: {enabled: true}
inputs:
  - type: container
    paths: ["/a/*.log", "/b/*.log"]
`, []string{"log.level", "aggregator.batch_max_bytes", "inputs[0].paths"}},
		{"an input more, a secret changed", `
log: {level: info}
aggregator:
  address: 127.0.0.1:7070
  batch_max_bytes: 1MiB
  bearer_token: s3cret-token-b
  tls: {enabled: true}
inputs:
  - type: container
    paths: ["/a/*.log"]
  - type: file
    paths: ["/c.log"]
`, []string{"aggregator.bearer_token", "inputs"}},
	}
	old, err := ParseAgent("a.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := ParseAgent("b.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := Changed(old, cur); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Changed = %q, want %q", got, tc.want)
			}
		})
	}

	agg, _ := ParseAggregator("a.yaml", []byte("sinks: [{type: elasticsearch, urls: [\"http://es:9200\"]}]\n"))
	agg2, _ := ParseAggregator("a.yaml", []byte("sinks: [{type: elasticsearch, urls: [\"http://es:9200\"], setup_templates: false}]\n"))
	if got, want := Changed(agg, agg2), []string{"sinks[0].setup_templates"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Changed = %q, want %q", got, want)
	}
}

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		key, prefix string
		want        bool
	}{
		{"inputs", "inputs", true},
		{"inputs[1].paths", "inputs", true},
		{"log.level", "log.level", true},
		{"log.format", "log.level", false},
		{"inputs_x", "inputs", false},
		{"log", "log.level", false},
	} {
		if got := Under(tc.key, tc.prefix); got != tc.want {
			t.Errorf("Under(%q, %q) = %v", tc.key, tc.prefix, got)
		}
	}
}
