package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefinesDAG(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "load.py")
	if err := os.WriteFile(path, []byte("@dag(schedule=None)\ndef load():\n    pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok, err := definesDAG(path)
	if err != nil || !ok {
		t.Fatalf("expected a DAG, got ok=%v err=%v", ok, err)
	}
}
