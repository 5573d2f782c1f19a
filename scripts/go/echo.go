// Bench-only: a Go `net` echo server, the twin of gopark's examples/echo.rs,
// for scripts/compare.sh.
//
//	go build -o echo-go scripts/go/echo.go
//	./echo-go [-workers N] [ADDR]
//
// One goroutine per connection reads into a 16 KiB buffer and writes back
// what it read until the peer closes (TCP_NODELAY is Go's default).
// GOMAXPROCS = -workers (default: one per core). Prints "listening on ADDR"
// once bound; exits 0 on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	workers := flag.Int("workers", 0, "worker threads (GOMAXPROCS; default: one per core)")
	flag.Parse()
	addr := "127.0.0.1:7000"
	if flag.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: echo-go [-workers N] [ADDR]")
		os.Exit(2)
	}
	if flag.NArg() == 1 {
		addr = flag.Arg(0)
	}
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo-go: cannot listen on %s: %v\n", addr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		os.Exit(0)
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			// Out of descriptors and the like: back off as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			fmt.Fprintf(os.Stderr, "accept error: %v; retrying in %v\n", err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go echo(c)
	}
}

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
