//go:build linux

package main

import (
	"errors"
	"testing"
)

func TestRequest(t *testing.T) {
	for _, tc := range []struct {
		in      string
		size    int
		key     string
		wantErr bool
	}{
		{in: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n", size: 27, key: "k"},
		{in: "*1\r\n$4\r\nPING\r\n", size: 14, key: ""},
		{in: "*2\r\n$3\r\nGET\r\n$3\r\nke"},  // bulk cut short
		{in: "*2\r\n$3\r\nGET\r\n$3"},        // header cut short
		{in: "*2\r\n$3\r\nGET\r\n"},          // element missing
		{in: "*2\r"},                         // count cut short
		{in: "PING\r\n", wantErr: true},      // inline
		{in: "*1\r\n:1\r\n", wantErr: true},  // not a bulk
		{in: "*1\r\n$-1\r\n", wantErr: true}, // null bulk
		{in: "*x\r\n", wantErr: true},
	} {
		size, key, err := request([]byte(tc.in))
		if (err != nil) != tc.wantErr || size != tc.size || string(key) != tc.key {
			t.Errorf("request(%q) = %d, %q, %v; want %d, %q, error %v", tc.in, size, key, err, tc.size, tc.key, tc.wantErr)
		}
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		size int
		err  error
	}{
		{in: "+OK\r\n+OK\r\n", size: 5},
		{in: "-ERR x\r\n", size: 8},
		{in: ":12\r\n", size: 5},
		{in: "$3\r\nabc\r\n:1\r\n", size: 9},
		{in: "$-1\r\n", size: 5},
		{in: "*-1\r\n", size: 5},
		{in: "*2\r\n$1\r\na\r\n*1\r\n:1\r\n", size: 19},
		{in: "*2\r\n$1\r\na\r\n*1\r\n"}, // nested element missing
		{in: "$3\r\nab"},
		{in: "+OK"},
		{in: ""},
		{in: "%1\r\n", err: errFraming}, // RESP3
		{in: "$x\r\n", err: errFraming},
	} {
		size, err := reply([]byte(tc.in))
		if !errors.Is(err, tc.err) || size != tc.size {
			t.Errorf("reply(%q) = %d, %v; want %d, %v", tc.in, size, err, tc.size, tc.err)
		}
	}
}
