package proxy

import (
	"testing"

	"github.com/reshard/reshard/proxy/command"
)

// Every handler serves a command of the command table: one for a command
// the table does not know would never run (the session answers "unknown
// command" first), and its clients would get that, not what it says.
func TestHandlersKnown(t *testing.T) {
	for name := range handlers {
		if command.LookupName(name) == nil {
			t.Errorf("handler %q serves no command of the table", name)
		}
	}
}

// A command given two handlers stops the proxy at start, naming the
// command, instead of one handler silently replacing the other.
func TestAddHandlersDuplicatePanics(t *testing.T) {
	table := map[string]handler{}
	addHandlers(table, map[string]handler{"ping": ping, "echo": ping})
	defer func() {
		got, _ := recover().(string)
		if want := "proxy: command ping has two handlers"; got != want {
			t.Errorf("panic %q, want %q", got, want)
		}
	}()
	addHandlers(table, map[string]handler{"quit": quit, "ping": ping})
}
