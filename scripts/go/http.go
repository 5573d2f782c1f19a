// Bench-only: a Go net/http server, the counterpart of gopark's
// examples/http, for scripts/compare.sh.
//
//	go build -o http-go scripts/go/http.go
//	./http-go [-addr ADDR] [-workers N]
//
// GET / answers "Hello, World!" (text/plain), GET /json a small JSON
// document, anything else 404 — the routes and bodies of the gopark server,
// with the same header and idle timeouts (10 s, 60 s) and write timeout
// (10 s). This is plain, idiomatic net/http: it answers pipelined requests
// one at a time, as net/http does. GOMAXPROCS = -workers (default: one per
// core). Prints "listening on http://ADDR" once bound; SIGINT or SIGTERM
// shuts down gracefully and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

var (
	hello = []byte("Hello, World!")
	json  = []byte(`{"message":"Hello, World!"}`)
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	workers := flag.Int("workers", 0, "worker threads (GOMAXPROCS; default: one per core)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: http-go [-addr ADDR] [-workers N]")
		os.Exit(2)
	}
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/" && r.URL.Path != "/json":
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		case r.URL.Path == "/":
			reply(w, "text/plain", hello)
		default:
			reply(w, "application/json", json)
		}
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "http-go: cannot listen on %s: %v\n", *addr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())

	done := make(chan struct{})
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "http-go: %v\n", err)
		os.Exit(1)
	}
	<-done
}

func reply(w http.ResponseWriter, contentType string, body []byte) {
	h := w.Header()
	h["Server"] = []string{"go"}
	h["Content-Type"] = []string{contentType}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}
