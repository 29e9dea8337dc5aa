package localredis

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

func TestStartAnswersPing(t *testing.T) {
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PING\r\n"))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "+PONG" {
		t.Fatalf("PING answered %q, %v", line, err)
	}
	s.Stop()
	s.Stop() // twice is harmless
	if c2, err := net.Dial("tcp", s.Addr); err == nil {
		c2.Close()
		t.Fatal("server still accepts connections after Stop")
	}
}
