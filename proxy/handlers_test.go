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
