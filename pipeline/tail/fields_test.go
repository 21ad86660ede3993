package tail

import "testing"

func TestInputFields(t *testing.T) {
	if InputFields("", "") != nil {
		t.Fatal("fields without dataset or environment")
	}
	fs := InputFields("haproxy.log", "prod")
	if fs["data_stream.dataset"].GetStr() != "haproxy.log" || fs["service.environment"].GetStr() != "prod" ||
		fs["data_stream.namespace"].GetStr() != "prod" || len(fs) != 3 {
		t.Fatalf("fields %v", fs)
	}
	if fs := InputFields("", "staging"); len(fs) != 2 || fs["data_stream.namespace"].GetStr() != "staging" {
		t.Fatalf("fields %v", fs)
	}
}
