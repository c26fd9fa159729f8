// Command dagscan lists Python files that define Airflow DAGs, quickly, in large repositories.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var skipDirs = map[string]bool{
	".git": true, "node_modules": true, "vendor": true, ".venv": true, "__pycache__": true,
}

var markers = [][]byte{[]byte("@dag("), []byte("DAG("), []byte("with DAG")}

// definesDAG reports whether the file at path mentions a DAG constructor.
func definesDAG(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Bytes()
		for _, m := range markers {
			if bytes.Contains(line, m) {
				return true, nil
			}
		}
	}
	return false, scanner.Err()
}

func main() {
	root := flag.String("root", ".", "repository root to scan")
	flag.Parse()
	err := filepath.WalkDir(*root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && skipDirs[d.Name()] {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".py") {
			return nil
		}
		ok, err := definesDAG(path)
		if err != nil {
			return err
		}
		if ok {
			fmt.Println(path)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dagscan:", err)
		os.Exit(2)
	}
}
