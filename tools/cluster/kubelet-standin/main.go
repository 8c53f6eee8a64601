// Command kubelet-standin serves the one kubelet endpoint the local control plane lacks:
// /portForward, which kube-apiserver dials for the pods/portforward subresource. The pod
// stand-in (tools/cluster/py/localcluster/standin.py) runs each pod as plain processes on a
// loopback address and lists them in --pods-file; this server forwards streams to them.
//
// Both protocols the API server speaks to a kubelet are served by the kubelet's own streaming
// code: websocket (v4.channel.k8s.io, proxied as is) and SPDY (which the API server uses when it
// translates kubectl's websocket tunnel).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

const (
	dialTimeout = 2 * time.Second
	// The kubelet's defaults (--streaming-connection-idle-timeout, stream creation timeout).
	idleTimeout           = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
	// How long the pod may still answer after the client has sent all it will send.
	drainTimeout = 5 * time.Second
)

// podEntry is one pod in the pods file, keyed by "namespace/name".
type podEntry struct {
	UID     string `json:"uid"`
	Address string `json:"address"`
	// Loopback is the pod's own 127.0.0.1 (pods share the machine's network namespace, so
	// each has a loopback address of its own); empty in pods files of older stand-ins.
	Loopback string `json:"loopback"`
}

type podsFile string

// lookup reads the file on every call: it is small, and the stand-in replaces it atomically.
func (f podsFile) lookup(key string) (podEntry, bool, error) {
	data, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return podEntry{}, false, nil
	}
	if err != nil {
		return podEntry{}, false, err
	}
	pods := map[string]podEntry{}
	if err := json.Unmarshal(data, &pods); err != nil {
		return podEntry{}, false, fmt.Errorf("%s: %w", f, err)
	}
	pod, ok := pods[key]
	return pod, ok, nil
}

// forwarder is a portforward.PortForwarder whose pod names are "namespace/name".
type forwarder struct{ pods podsFile }

func (f forwarder) PortForward(_ context.Context, name, _ string, port int32, stream io.ReadWriteCloser) error {
	// Looked up again per stream: a pod deleted while the connection lasts takes no new streams.
	pod, ok, err := f.pods.lookup(name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pod %s is not running on the stand-in node", name)
	}
	conn, err := dialPod(pod, port)
	if err != nil {
		return err
	}
	defer conn.Close()

	podDone := make(chan struct{})
	clientDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, conn)
		close(podDone)
	}()
	go func() {
		// Ends when the client closes its side, or when ServePortForward closes the stream
		// after we return.
		_, _ = io.Copy(conn, stream)
		close(clientDone)
	}()
	select {
	case <-podDone:
		// Returning makes ServePortForward close the stream, so the client sees the end.
	case <-clientDone:
		// The client will send nothing more: the pod sees EOF, and gets a moment to finish
		// its answer before the deferred Close cuts it off.
		_ = conn.(*net.TCPConn).CloseWrite()
		select {
		case <-podDone:
		case <-time.After(drainTimeout):
		}
	}
	return nil
}

// dialPod reaches a port inside the pod as containerd's CRI does
// (internal/cri/server/sandbox_portforward_linux.go): localhost inside the pod's network
// namespace first, which reaches a process bound to the pod's loopback only (daprd's pprof with
// Dapr's default listen addresses), then the pod's IP, for processes bound to it alone.
func dialPod(pod podEntry, port int32) (net.Conn, error) {
	var errs []error
	for _, host := range []string{pod.Loopback, pod.Address} {
		if host == "" {
			continue
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))), dialTimeout)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func main() {
	address := flag.String("address", "127.0.0.1:10250", "host:port to serve HTTPS on")
	certFile := flag.String("tls-cert-file", "", "serving certificate (PEM)")
	keyFile := flag.String("tls-private-key-file", "", "serving key (PEM)")
	clientCA := flag.String("client-ca-file", "", "CA that signs the client certificates every request must present")
	pods := flag.String("pods-file", "", `JSON map "namespace/name" -> {"uid", "address"}, written by the pod stand-in`)
	flag.Parse()
	if *certFile == "" || *keyFile == "" || *clientCA == "" || *pods == "" {
		log.Fatal("--tls-cert-file, --tls-private-key-file, --client-ca-file and --pods-file are required")
	}
	caPEM, err := os.ReadFile(*clientCA)
	if err != nil {
		log.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		log.Fatalf("%s holds no PEM certificate", *clientCA)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	handler := portForwardHandler(podsFile(*pods))
	mux.HandleFunc("/portForward/{namespace}/{pod}", handler)
	mux.HandleFunc("/portForward/{namespace}/{pod}/{uid}", handler)

	// SPDY and websocket upgrades hijack an HTTP/1.1 connection: HTTP/2 must not be offered.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	server := &http.Server{
		Addr:              *address,
		Handler:           mux,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  clientCAs,
		},
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		_ = server.Close() // hijacked streams die with the process
	}()
	log.Printf("kubelet-standin pid %d serving on %s, pods from %s", os.Getpid(), listener.Addr(), *pods)
	if err := server.ServeTLS(listener, *certFile, *keyFile); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func portForwardHandler(pods podsFile) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		key := req.PathValue("namespace") + "/" + req.PathValue("pod")
		pod, ok, err := pods.lookup(key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		uid := req.PathValue("uid")
		if !ok || (uid != "" && uid != pod.UID) {
			http.Error(w, fmt.Sprintf("pod %s (uid %q) is not running on the stand-in node", key, uid), http.StatusNotFound)
			return
		}
		opts, err := portforward.NewV4Options(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Printf("port-forward %s (%s) for %s over %s", key, pod.Address, req.RemoteAddr, req.Header.Get("Upgrade"))
		portforward.ServePortForward(w, req, forwarder{pods}, key, pod.UID, opts,
			idleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
	}
}
