// Command fake-gcs-server serves fsouza/fake-gcs-server's in-process GCS emulator (package
// fakestorage) over plain HTTP on one address, for the object-store tests.
//
// One gap is filled: the emulator does not take an object upload in GCS's XML API form, a plain
// `PUT /<bucket>/<object>`, which is how Rust's object_store crate (under obstore) writes every
// object up to its multipart threshold (fsouza/fake-gcs-server#331; the crate's own CI runs a
// forked build for that). The emulator does store such a PUT when it carries a signed URL's
// `X-Goog-Algorithm` parameter, so that parameter is added, and the reply is made the XML API's:
// the object's ETag and generation in headers, no body. Storage, listing, reads and deletes are
// the emulator's own. XML multipart uploads (fsouza/fake-gcs-server#852) are not filled in: an
// object larger than one part fails here, as it would without this command.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

func main() {
	scheme := flag.String("scheme", "http", "only http is served")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Uint("port", 4443, "port to listen on")
	backend := flag.String("backend", "memory", "memory or filesystem")
	root := flag.String("filesystem-root", "", "directory of the filesystem backend")
	data := flag.String("data", "", "directory whose folders are created as buckets (with their files)")
	flag.Parse()
	if *scheme != "http" {
		log.Fatalf("-scheme %s: only http is served", *scheme)
	}
	addr := net.JoinHostPort(*host, strconv.FormatUint(uint64(*port), 10))
	options := fakestorage.Options{
		Scheme:     "http",
		Host:       *host,
		Port:       uint16(*port),
		NoListener: true,
		Seed:       *data,
		// The XML API is served only for requests to the public host: make that this address.
		PublicHost:  addr,
		ExternalURL: "http://" + addr,
		Writer:      os.Stderr,
	}
	switch *backend {
	case "memory":
	case "filesystem":
		if *root == "" {
			log.Fatal("-backend filesystem needs -filesystem-root")
		}
		options.StorageRoot = *root
	default:
		log.Fatalf("-backend %s: use memory or filesystem", *backend)
	}
	server, err := fakestorage.NewServerWithOptions(options)
	if err != nil {
		log.Fatal(err)
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("fake-gcs-server serving http://%s", addr)
	log.Fatal(http.Serve(listener, xmlPut(server.HTTPHandler())))
}

// xmlPut passes a plain XML API object PUT to the emulator's signed-URL upload and answers it as
// GCS does; any other request goes to the emulator untouched.
func xmlPut(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query := r.URL.Query()
		path := strings.TrimPrefix(r.URL.EscapedPath(), "/")
		if r.Method != http.MethodPut || !strings.Contains(path, "/") ||
			strings.HasPrefix(path, "upload/") || query.Has("uploadType") ||
			query.Has("uploadId") || query.Has("X-Goog-Algorithm") {
			next.ServeHTTP(w, r)
			return
		}
		query.Set("X-Goog-Algorithm", "none")
		r.URL.RawQuery = query.Encode()
		recorder := httptest.NewRecorder()
		next.ServeHTTP(recorder, r)
		if recorder.Code != http.StatusOK {
			copyHeader(w.Header(), recorder.Header())
			w.WriteHeader(recorder.Code)
			_, _ = io.Copy(w, recorder.Body)
			return
		}
		var stored struct {
			Etag       string `json:"etag"`
			Generation string `json:"generation"`
		}
		if err := json.NewDecoder(bytes.NewReader(recorder.Body.Bytes())).Decode(&stored); err != nil {
			http.Error(w, fmt.Sprintf("emulator reply: %v", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", strconv.Quote(stored.Etag))
		w.Header().Set("X-Goog-Generation", stored.Generation)
		w.WriteHeader(http.StatusOK)
	})
}

func copyHeader(to, from http.Header) {
	for name, values := range from {
		to[name] = values
	}
}
