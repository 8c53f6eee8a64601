"""Pure decisions: no I/O, no clients. Everything here is a function of its arguments."""
