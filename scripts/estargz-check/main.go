// Command estargz-check is Wharf's interop check against the reference eStargz library
// (github.com/containerd/stargz-snapshotter/estargz), both ways:
//
//	estargz-check verify <layer.tar.gz> <toc-digest>
//	    opens a layer with estargz.Open, verifies the TOC against the digest and every chunk
//	    against its chunkDigest, and prints one JSON line per entry:
//	    {"name","type","size","mode","linkName","sha256"}.
//	estargz-check build <in.tar> <out.tar.gz> <chunk-size>
//	    converts a tar with estargz.Build and prints {"tocDigest","diffID"}.
//
// Built in GOPATH mode against Debian's golang-github-containerd-stargz-snapshotter-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o estargz-check ./scripts/estargz-check
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

type entry struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Size     int64  `json:"size"`
	Mode     int64  `json:"mode"`
	LinkName string `json:"linkName,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "estargz-check: "+format+"\n", a...)
	os.Exit(1)
}

func sectionOf(path string) (*os.File, *io.SectionReader) {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	st, err := f.Stat()
	if err != nil {
		fail("%v", err)
	}
	return f, io.NewSectionReader(f, 0, st.Size())
}

func verify(layer, tocDigest string) {
	f, sr := sectionOf(layer)
	defer f.Close()
	r, err := estargz.Open(sr)
	if err != nil {
		fail("open: %v", err)
	}
	want, err := digest.Parse(tocDigest)
	if err != nil {
		fail("toc digest: %v", err)
	}
	v, err := r.VerifyTOC(want)
	if err != nil {
		fail("verify TOC: %v", err)
	}
	root, ok := r.Lookup("")
	if !ok {
		fail("no root")
	}
	var out []entry
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		var names []string
		e.ForeachChild(func(base string, _ *estargz.TOCEntry) bool {
			names = append(names, base)
			return true
		})
		sort.Strings(names)
		for _, base := range names {
			child, _ := e.LookupChild(base)
			name := base
			if dir != "" {
				name = dir + "/" + base
			}
			if name == estargz.TOCTarName {
				continue
			}
			ent := entry{Name: name, Type: child.Type, Size: child.Size, Mode: child.Mode, LinkName: child.LinkName}
			if child.Type == "reg" {
				// Every chunk through its verifier, then the whole file through OpenFile.
				for off := int64(0); off < child.Size; {
					ce, ok := r.ChunkEntryForOffset(name, off)
					if !ok {
						fail("%s: no chunk at %d", name, off)
					}
					cv, err := v.Verifier(ce)
					if err != nil {
						fail("%s: %v", name, err)
					}
					fr, err := r.OpenFile(name)
					if err != nil {
						fail("%s: %v", name, err)
					}
					if _, err := io.Copy(cv, io.NewSectionReader(fr, ce.ChunkOffset, ce.ChunkSize)); err != nil {
						fail("%s: %v", name, err)
					}
					if !cv.Verified() {
						fail("%s: chunk at %d does not match its chunkDigest", name, ce.ChunkOffset)
					}
					off = ce.ChunkOffset + ce.ChunkSize
				}
				fr, err := r.OpenFile(name)
				if err != nil {
					fail("%s: %v", name, err)
				}
				h := sha256.New()
				if _, err := io.Copy(h, io.NewSectionReader(fr, 0, child.Size)); err != nil {
					fail("%s: %v", name, err)
				}
				ent.SHA256 = hex.EncodeToString(h.Sum(nil))
			}
			out = append(out, ent)
			if child.Type == "dir" {
				walk(name, child)
			}
		}
	}
	walk("", root)
	enc := json.NewEncoder(os.Stdout)
	for _, e := range out {
		_ = enc.Encode(e)
	}
}

func build(in, out string, chunkSize int) {
	f, sr := sectionOf(in)
	defer f.Close()
	blob, err := estargz.Build(sr, estargz.WithChunkSize(chunkSize))
	if err != nil {
		fail("build: %v", err)
	}
	defer blob.Close()
	o, err := os.Create(out)
	if err != nil {
		fail("%v", err)
	}
	if _, err := io.Copy(o, blob); err != nil {
		fail("%v", err)
	}
	if err := o.Close(); err != nil {
		fail("%v", err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"tocDigest": blob.TOCDigest().String(), "diffID": blob.DiffID().String()})
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "verify" {
		verify(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) == 5 && os.Args[1] == "build" {
		n, err := strconv.Atoi(os.Args[4])
		if err != nil {
			fail("chunk size: %v", err)
		}
		build(os.Args[2], os.Args[3], n)
		return
	}
	fail("usage: estargz-check verify <layer> <toc-digest> | build <in.tar> <out.tar.gz> <chunk-size>")
}
